//! A small blocking connection pool: at most `size` connections, a bounded
//! wait for a free one, broken ones dropped and replaced on demand.
//!
//! The storage trait is synchronous and runs on the server's blocking
//! threads, so the pool is too: no async glue, no runtime of its own.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use postgres::Client;

use super::super::{StorageError, StorageResult};
use super::connect::Connector;

/// One pooled connection, its session set up.
pub(super) struct Conn {
    pub(super) client: Client,
    /// When it was last given back.
    idle_since: Instant,
}

/// A connection idle longer than this is checked (one empty query)
/// before it is lent again: the database may have restarted or failed over
/// meanwhile.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(30);

/// The set-up every new connection runs (its session settings).
pub(super) type Setup = Box<dyn Fn(&mut Client) -> StorageResult<()> + Send + Sync>;

struct State {
    idle: Vec<Conn>,
    /// Connections open (idle or lent), plus those being opened.
    open: usize,
}

pub(super) struct Pool {
    connector: Connector,
    size: usize,
    acquire_timeout: Duration,
    state: Mutex<State>,
    freed: Condvar,
    /// Called on every new connection (session checks).
    setup: Setup,
}

/// A connection lent by the pool; goes back on drop unless broken.
pub(super) struct Lent<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
    /// Set when the connection's state is unknown (an error mid-transaction
    /// that could not be rolled back): it is closed, not reused.
    pub(super) broken: bool,
}

impl Lent<'_> {
    pub(super) fn conn(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("a lent connection")
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let Some(mut c) = self.conn.take() else {
            return;
        };
        c.idle_since = Instant::now();
        let mut st = self.pool.lock();
        if self.broken || c.client.is_closed() {
            st.open -= 1;
            drop(st);
            drop(c);
        } else {
            st.idle.push(c);
            drop(st);
        }
        self.pool.freed.notify_one();
    }
}

impl Pool {
    pub(super) fn new(
        connector: Connector,
        size: usize,
        acquire_timeout: Duration,
        setup: Setup,
    ) -> Pool {
        Pool {
            connector,
            size: size.max(1),
            acquire_timeout,
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
            setup,
        }
    }

    pub(super) fn connector(&self) -> &Connector {
        &self.connector
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection: an idle one, a new one while under `size`, or the
    /// first one freed within the acquire timeout.
    pub(super) fn get(&self) -> StorageResult<Lent<'_>> {
        let deadline = Instant::now() + self.acquire_timeout;
        let mut st = self.lock();
        loop {
            if let Some(mut c) = st.idle.pop() {
                if c.idle_since.elapsed() > CHECK_AFTER_IDLE {
                    drop(st);
                    let alive = c.client.is_valid(Duration::from_secs(2)).is_ok();
                    st = self.lock();
                    if !alive {
                        st.open -= 1;
                        continue;
                    }
                }
                return Ok(Lent {
                    pool: self,
                    conn: Some(c),
                    broken: false,
                });
            }
            if st.open < self.size {
                st.open += 1;
                drop(st);
                return match self.open_one() {
                    Ok(c) => Ok(Lent {
                        pool: self,
                        conn: Some(c),
                        broken: false,
                    }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StorageError(format!(
                    "postgres {}: no free connection within {} ms (all {} in use; raise \
                     postgres.pool_size or postgres.acquire_timeout_ms)",
                    self.connector.label,
                    self.acquire_timeout.as_millis(),
                    self.size
                )));
            }
            st = self
                .freed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn open_one(&self) -> StorageResult<Conn> {
        let mut client = self.connector.connect()?;
        (self.setup)(&mut client)?;
        Ok(Conn {
            client,
            idle_since: Instant::now(),
        })
    }

    /// Take every idle connection out (to close them).
    pub(super) fn drain(&self) -> Vec<Conn> {
        let mut st = self.lock();
        let v = std::mem::take(&mut st.idle);
        st.open -= v.len();
        v
    }
}
