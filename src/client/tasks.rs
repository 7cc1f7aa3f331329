//! Running requests to many servers: concurrently across distinct servers,
//! one at a time per server, transient failures retried with backoff, and
//! python-passcrow's retry budget (tasks + 3 failures in all).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::{Error, Result};

/// How requests are paced.
#[derive(Clone, Debug)]
pub struct Pacing {
    /// An anonymity delay between requests to one server: a random time in
    /// this range (python-passcrow sleeps 0..600 s). `None` = no delay.
    pub delay: Option<(Duration, Duration)>,
    /// First wait after a transient failure (doubles, up to `max_backoff`).
    pub backoff: Duration,
    /// Longest wait between retries.
    pub max_backoff: Duration,
    /// After a rate-limit answer, keep at least this gap between requests
    /// to that server (the reference allows 1 request per second).
    pub rate_limit_gap: Duration,
    /// Retry a transient failure only within this time of the request's
    /// first attempt, so a server that never answers cannot hold a call
    /// for long: with the request deadlines of `Timeouts`, a `protect`
    /// against such a server fails within a minute.
    pub retry_for: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            delay: None,
            backoff: Duration::from_millis(1100),
            max_backoff: Duration::from_secs(8),
            rate_limit_gap: Duration::from_millis(1100),
            retry_for: Duration::from_secs(30),
        }
    }
}

/// Something that sleeps (a test or an app may supply its own).
pub type Sleeper = dyn Fn(Duration) + Send + Sync;

/// Run `run` over `tasks`; `server_of` says which server each task talks
/// to. Results come back in task order.
pub(crate) fn run_tasks<T, R, S, F>(
    tasks: &[T],
    pacing: &Pacing,
    sleep: &Sleeper,
    server_of: S,
    run: F,
) -> Vec<Result<R>>
where
    T: Sync,
    R: Send,
    S: Fn(&T) -> String + Sync,
    F: Fn(&T) -> Result<R> + Sync,
{
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, t) in tasks.iter().enumerate() {
        let s = server_of(t);
        match groups.iter_mut().find(|g| g.0 == s) {
            Some(g) => g.1.push(i),
            None => groups.push((s, vec![i])),
        }
    }
    let budget = tasks.len() + 3;
    let failures = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<R>>>> =
        Mutex::new((0..tasks.len()).map(|_| None).collect());

    let work = |indices: &Vec<usize>| {
        let mut queue: VecDeque<usize> = indices.iter().copied().collect();
        let mut first_try: Vec<Option<Instant>> = vec![None; tasks.len()];
        let mut gap: Option<Duration> = None;
        let mut last: Option<Instant> = None;
        let mut backoff = pacing.backoff;
        let mut first = true;
        while let Some(i) = queue.pop_front() {
            if failures.load(Ordering::SeqCst) >= budget {
                let e = Error::Transport(format!("gave up after {budget} failed requests"));
                results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(Err(e));
                continue;
            }
            if !first {
                if let Some((lo, hi)) = pacing.delay {
                    let d = if hi > lo {
                        rand::rngs::OsRng.gen_range(lo..=hi)
                    } else {
                        lo
                    };
                    sleep(d);
                }
            }
            first = false;
            if let (Some(g), Some(l)) = (gap, last) {
                let since = l.elapsed();
                if since < g {
                    sleep(g - since);
                }
            }
            last = Some(Instant::now());
            let started = *first_try[i].get_or_insert_with(Instant::now);
            let r = run(&tasks[i]);
            match r {
                Err(e) if e.is_transient() => {
                    let n = failures.fetch_add(1, Ordering::SeqCst) + 1;
                    if matches!(e, Error::RateLimited { .. }) || is_http_5xx(&e) {
                        gap = Some(pacing.rate_limit_gap);
                    }
                    if n >= budget || started.elapsed() + backoff > pacing.retry_for {
                        results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(Err(e));
                        continue;
                    }
                    sleep(backoff);
                    backoff = (backoff * 2).min(pacing.max_backoff);
                    queue.push_back(i);
                }
                Err(e) => {
                    failures.fetch_add(1, Ordering::SeqCst);
                    results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(Err(e));
                }
                Ok(v) => {
                    backoff = pacing.backoff;
                    results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(Ok(v));
                }
            }
        }
    };

    if groups.len() == 1 {
        work(&groups[0].1);
    } else {
        std::thread::scope(|s| {
            for g in &groups {
                let work = &work;
                s.spawn(move || work(&g.1));
            }
        });
    }
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::Transport("request was not run".into()))))
        .collect()
}

fn is_http_5xx(e: &Error) -> bool {
    matches!(e, Error::Transport(m) if m.starts_with("HTTP 5"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn retries_transient_and_keeps_order() {
        let tries = AtomicU32::new(0);
        let tasks = vec![("a", 1), ("b", 2), ("a", 3)];
        let r = run_tasks(
            &tasks,
            &Pacing::default(),
            &|_| {},
            |t| t.0.to_string(),
            |t| {
                if t.1 == 2 && tries.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(Error::RateLimited { server: "b".into() })
                } else if t.1 == 3 {
                    Err(Error::bad_input("no"))
                } else {
                    Ok(t.1 * 10)
                }
            },
        );
        assert_eq!(r[0].as_ref().unwrap(), &10);
        assert_eq!(r[1].as_ref().unwrap(), &20);
        assert!(matches!(r[2], Err(Error::BadInput(_))));
        assert_eq!(tries.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn no_retry_after_retry_for() {
        let calls = AtomicU32::new(0);
        let pacing = Pacing {
            retry_for: Duration::from_millis(500),
            backoff: Duration::from_millis(10),
            ..Pacing::default()
        };
        let start = Instant::now();
        let r = run_tasks(
            &[1],
            &pacing,
            &std::thread::sleep,
            |_| "s".into(),
            |_| -> Result<()> {
                // The first try fails at once, the second only after
                // longer than retry_for: wide margins, for loaded machines.
                if calls.fetch_add(1, Ordering::SeqCst) > 0 {
                    std::thread::sleep(Duration::from_millis(600));
                }
                Err(Error::Transport("no answer".into()))
            },
        );
        assert!(r[0].is_err());
        // Retried once (well within 500 ms), then past 500 ms: no third try.
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn budget_is_tasks_plus_three() {
        let calls = AtomicU32::new(0);
        let tasks = vec![1, 2];
        let r = run_tasks(
            &tasks,
            &Pacing::default(),
            &|_| {},
            |_| "s".into(),
            |_| -> Result<()> {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(Error::Transport("down".into()))
            },
        );
        assert!(r.iter().all(|x| x.is_err()));
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }
}
