//! Load benchmark helper for passcrow-server (see scripts/bench-server.sh).
//!
//! ```text
//! bench_server fill --data DIR --count N [--database URL]
//!     store N one-day escrows in DIR's database (or the PostgreSQL one at
//!     URL, its password in $PASSCROW_DATABASE_PASSWORD) through the
//!     storage layer (sealed like real ones, 10,000 per transaction);
//!     prints one JSON line.
//! bench_server load --url URL[,URL...] --codes FILE --seconds S --concurrency C [--label L]
//!     [--policy-only] [--server-pid PID[,PID...]]
//!     run escrow -> verify -> recover cycles (1-day escrows paid free, a
//!     fresh identity per cycle, codes read from the server's code file)
//!     for S seconds on C connections; prints one JSON line with requests
//!     per second and p50/p99 latency per request type. --policy-only asks
//!     for the policy instead (the HTTP layer alone, for comparison).
//!     Several URLs (instances of one server): connection i goes to URL
//!     i mod their number, all its cycles on that instance; their code
//!     files must be one file. With --server-pid the JSON says how many
//!     cores those processes used; it always says how busy the whole
//!     machine was (/proc/stat), which counts a database's processes too.
//! ```

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use passcrow::server::config::Config;
use passcrow::server::Server;
use passcrow::testing::{random_key, seal};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn need(args: &[String], name: &str) -> String {
    arg(args, name).unwrap_or_else(|| {
        eprintln!("bench_server: {name} is needed");
        std::process::exit(2)
    })
}

/// Escrow data as a client makes it: a share-sized secret, an identity,
/// the reference's layout (indent=2).
fn escrow_data(identity: &str, secret: &str) -> (String, String) {
    let key = random_key();
    let esd = serde_json::json!({
        "description": "Passcrow Data",
        "secret": secret,
        "verify": identity,
        "timeout": 1800,
    });
    let text = serde_json::to_string_pretty(&esd).unwrap_or_default();
    (seal(&key, text.as_bytes()).unwrap(), key.to_b64())
}

fn share(i: u64) -> String {
    // "%x-%x": x small, y up to 521 bits (131 hex digits).
    let mut y = [0u8; 66];
    passcrow::testing::random_bytes(&mut y);
    y[0] &= 1;
    let hex: String = y.iter().map(|b| format!("{b:02x}")).collect();
    format!("{:x}-{}", i % 3 + 1, hex.trim_start_matches('0'))
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn fill(args: &[String]) {
    let data = PathBuf::from(need(args, "--data"));
    let count: u64 = need(args, "--count").parse().expect("--count N");
    let mut cfg = Config::new(&data);
    cfg.create_master_key = true;
    cfg.delivery.file = Some(data.join("codes.txt"));
    // A PostgreSQL URL (its password in $PASSCROW_DATABASE_PASSWORD), or
    // the SQLite file in DIR.
    cfg.database = arg(args, "--database");
    let server = Server::open(cfg).expect("open the server's storage");
    let t0 = Instant::now();
    let exp = now() + 86400;
    let batch = 10_000u64;
    let mut done = 0u64;
    while done < count {
        let n = batch.min(count - done);
        let items: Vec<(String, i64)> = (done..done + n)
            .map(|i| {
                let (blob, _) = escrow_data(&format!("email:fill{i}@example.org"), &share(i));
                (blob, exp)
            })
            .collect();
        server.import_escrows(&items).expect("import");
        done += n;
        if done % 100_000 == 0 {
            eprintln!("fill: {done} escrows, {:.1} s", t0.elapsed().as_secs_f64());
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    drop(server);
    let bytes = dir_bytes(&data);
    println!(
        "{}",
        serde_json::json!({
            "escrows": count, "seconds": secs, "disk-bytes": bytes,
            "bytes-per-escrow": bytes as f64 / count.max(1) as f64,
        })
    );
}

/// Follows the server's `identity<TAB>code` file.
struct Codes {
    file: std::fs::File,
    pos: u64,
    partial: String,
    seen: HashMap<String, String>,
}

impl Codes {
    fn take(&mut self, identity: &str) -> Option<String> {
        if let Some(c) = self.seen.remove(identity) {
            return Some(c);
        }
        let _ = self.file.seek(SeekFrom::Start(self.pos));
        let mut r = BufReader::new(&self.file);
        let mut line = String::new();
        while let Ok(n) = r.read_line(&mut line) {
            if n == 0 {
                break;
            }
            self.pos += n as u64;
            if !line.ends_with('\n') {
                self.partial.push_str(&line);
                line.clear();
                continue;
            }
            let full = std::mem::take(&mut self.partial) + &line;
            if let Some((who, code)) = full.trim_end().split_once('\t') {
                self.seen.insert(who.to_string(), code.to_string());
            }
            line.clear();
        }
        self.seen.remove(identity)
    }
}

#[derive(Default)]
struct Lat {
    escrow: Vec<f64>,
    verify: Vec<f64>,
    recover: Vec<f64>,
    errors: u64,
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

/// CPU seconds (user + system) process `pid` ("self" for this one) has
/// used, from /proc (in USER_HZ ticks, 100 a second on Linux); 0 where
/// /proc is missing.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
}

/// CPU seconds the whole machine has spent busy (not idle, not waiting
/// for I/O) since boot, from the first line of /proc/stat.
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let total: f64 = f.iter().take(8).sum();
    let idle = f.get(3).unwrap_or(&0.0) + f.get(4).unwrap_or(&0.0);
    (total - idle) / 100.0
}

fn load(args: &[String]) {
    let urls: Vec<String> = need(args, "--url")
        .split(',')
        .map(|u| u.trim_end_matches('/').to_string())
        .collect();
    let codes_path = PathBuf::from(need(args, "--codes"));
    let seconds: f64 = need(args, "--seconds").parse().expect("--seconds S");
    let conc: usize = need(args, "--concurrency")
        .parse()
        .expect("--concurrency C");
    let label = arg(args, "--label").unwrap_or_else(|| "server".into());
    let policy_only = args.iter().any(|a| a == "--policy-only");
    let run_id = now();
    let codes = Arc::new(Mutex::new(Codes {
        file: std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&codes_path)
            .expect("open the code file"),
        pos: std::fs::metadata(&codes_path).map(|m| m.len()).unwrap_or(0),
        partial: String::new(),
        seen: HashMap::new(),
    }));
    let all = Arc::new(Mutex::new(Lat::default()));
    // The server's process, to say how much CPU each side used: with both
    // on one machine, a generator near a full share of the cores would be
    // the bottleneck rather than the server.
    let server_pids: Vec<String> = arg(args, "--server-pid")
        .map(|p| p.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let servers_cpu = |pids: &[String]| pids.iter().map(|p| cpu_seconds(p)).sum::<f64>();
    let server_cpu0 = servers_cpu(&server_pids);
    let machine0 = machine_busy_seconds();
    let cpu0 = cpu_seconds("self");
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let t0 = Instant::now();
    let mut threads = vec![];
    for w in 0..conc {
        let url = urls[w % urls.len()].clone();
        let (codes, all) = (codes.clone(), all.clone());
        threads.push(std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .max_idle_connections_per_host(1)
                .build();
            let mut lat = Lat::default();
            let call = |lat: &mut Lat, which: u8, method: &str, body: String| {
                let t = Instant::now();
                let r = agent
                    .post(&format!("{url}/passcrow/{method}"))
                    .set("Content-Type", "application/json")
                    .send_bytes(body.as_bytes());
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                let v: Option<serde_json::Value> = r
                    .ok()
                    .and_then(|r| r.into_string().ok())
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .filter(|v: &serde_json::Value| v.get("error").is_none());
                match which {
                    0 => lat.escrow.push(ms),
                    1 => lat.verify.push(ms),
                    _ => lat.recover.push(ms),
                }
                if v.is_none() {
                    lat.errors += 1;
                }
                v
            };
            let mut i = 0u64;
            while policy_only && Instant::now() < deadline {
                // The HTTP layer's ceiling: no storage, no crypto.
                call(&mut lat, 0, "policy", "{}".into());
            }
            while Instant::now() < deadline {
                i += 1;
                let who = format!("email:b{run_id:x}w{w}n{i}@example.org");
                let secret = share(i);
                let (blob, key) = escrow_data(&who, &secret);
                let pkey = random_key();
                let params = serde_json::json!({
                    "kind": "email", "expiration": now() + 86400, "payment": "free:0"});
                let body = serde_json::json!({
                    "passcrow-escrow-request": "1.0",
                    "parameters-key": pkey.to_b64(),
                    "parameters": seal(&pkey, params.to_string().as_bytes()).unwrap(),
                    "escrow-data": [blob],
                });
                let Some(r) = call(&mut lat, 0, "escrowrequest", body.to_string()) else {
                    continue;
                };
                let id = r["escrow-data-id"].as_str().unwrap_or_default().to_string();
                let body = serde_json::json!({
                    "passcrow-verification-request": "1.0", "escrow-data-id": id,
                    "escrow-data-key": key, "language": "en", "prefix": "1"});
                if call(&mut lat, 1, "verificationrequest", body.to_string()).is_none() {
                    continue;
                }
                let mut code = None;
                for _ in 0..200 {
                    code = codes.lock().unwrap_or_else(|p| p.into_inner()).take(&who);
                    if code.is_some() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                let Some(code) = code else {
                    lat.errors += 1;
                    continue;
                };
                let body = serde_json::json!({
                    "passcrow-recovery-request": "1.0", "escrow-data-id": id,
                    "escrow-data-key": key, "verification": code});
                if let Some(r) = call(&mut lat, 2, "recoveryrequest", body.to_string()) {
                    if r["escrow-secret"].as_str() != Some(secret.as_str()) {
                        lat.errors += 1;
                    }
                }
            }
            let mut a = all.lock().unwrap_or_else(|p| p.into_inner());
            a.escrow.extend(lat.escrow);
            a.verify.extend(lat.verify);
            a.recover.extend(lat.recover);
            a.errors += lat.errors;
        }));
    }
    for t in threads {
        let _ = t.join();
    }
    let secs = t0.elapsed().as_secs_f64();
    let generator_cores = (cpu_seconds("self") - cpu0) / secs;
    let server_cores =
        (!server_pids.is_empty()).then(|| (servers_cpu(&server_pids) - server_cpu0) / secs);
    let machine_cores = (machine_busy_seconds() - machine0) / secs;
    let mut a = all.lock().unwrap_or_else(|p| p.into_inner());
    let mut every: Vec<f64> = a
        .escrow
        .iter()
        .chain(&a.verify)
        .chain(&a.recover)
        .copied()
        .collect();
    let n = every.len();
    let summary = |v: &mut Vec<f64>| serde_json::json!({"count": v.len(), "p50-ms": pct(v, 0.5), "p99-ms": pct(v, 0.99)});
    println!(
        "{}",
        serde_json::json!({
            "label": label,
            "seconds": secs,
            "concurrency": conc,
            "requests": n,
            "errors": a.errors,
            "rps": n as f64 / secs,
            "cycles-per-second": a.recover.len() as f64 / secs,
            "p50-ms": pct(&mut every, 0.5),
            "p99-ms": pct(&mut every, 0.99),
            "escrow": summary(&mut a.escrow),
            "verify": summary(&mut a.verify),
            "recover": summary(&mut a.recover),
            "generator-cores": generator_cores,
            "server-cores": server_cores,
            "machine-cores": machine_cores,
            "instances": urls.len(),
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        })
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("fill") => fill(&args),
        Some("load") => load(&args),
        _ => {
            eprintln!("usage: bench_server fill|load ... (see the source's header)");
            std::process::exit(2);
        }
    }
}
