//! Per-client limits: a token-bucket [`RateLimiter`] whose table is a
//! bounded, sharded LRU (O(1) per request, the least recently seen client
//! forgotten first), and [`ConnLimiter`], open connections per address.
//! Both key on [`bucket_key`]: IPv4 per address, IPv6 per /64.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::clientaddr::bucket_key;

/// Default number of clients the rate limiter remembers.
pub const DEFAULT_RATE_LIMIT_CLIENTS: usize = 65_536;

const SHARDS: usize = 16;
const NIL: u32 = u32::MAX;

struct Node {
    key: IpAddr,
    tokens: f64,
    at: Instant,
    prev: u32,
    next: u32,
}

/// A fixed-capacity map from key to bucket, most recently seen first.
struct Lru {
    cap: usize,
    map: HashMap<IpAddr, u32>,
    nodes: Vec<Node>,
    head: u32,
    tail: u32,
}

impl Lru {
    fn new(cap: usize) -> Lru {
        Lru {
            cap: cap.max(1),
            map: HashMap::new(),
            nodes: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }

    fn unlink(&mut self, i: u32) {
        let (p, n) = {
            let node = &self.nodes[i as usize];
            (node.prev, node.next)
        };
        match p {
            NIL => self.head = n,
            p => self.nodes[p as usize].next = n,
        }
        match n {
            NIL => self.tail = p,
            n => self.nodes[n as usize].prev = p,
        }
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        {
            let node = &mut self.nodes[i as usize];
            node.prev = NIL;
            node.next = old;
        }
        if old != NIL {
            self.nodes[old as usize].prev = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }

    /// The bucket for `key` (made full if new, evicting the least recently
    /// seen when at capacity), now the most recently seen.
    fn get(&mut self, key: IpAddr, full: f64, now: Instant) -> &mut Node {
        let i = match self.map.get(&key) {
            Some(&i) => {
                self.unlink(i);
                i
            }
            None if self.nodes.len() < self.cap => {
                let i = self.nodes.len() as u32;
                self.nodes.push(Node {
                    key,
                    tokens: full,
                    at: now,
                    prev: NIL,
                    next: NIL,
                });
                self.map.insert(key, i);
                i
            }
            None => {
                let i = self.tail;
                self.unlink(i);
                let node = &mut self.nodes[i as usize];
                let old = std::mem::replace(&mut node.key, key);
                node.tokens = full;
                node.at = now;
                self.map.remove(&old);
                self.map.insert(key, i);
                i
            }
        };
        self.push_front(i);
        &mut self.nodes[i as usize]
    }
}

/// A token bucket per client (IPv4 address or IPv6 /64), remembering at
/// most a fixed number of clients.
pub struct RateLimiter {
    burst: f64,
    per_second: f64,
    hasher: RandomState,
    shards: Vec<Mutex<Lru>>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("burst", &self.burst)
            .field("per_second", &self.per_second)
            .field("clients", &self.len())
            .finish()
    }
}

impl RateLimiter {
    /// `burst` requests at once, refilled at `per_second`; a burst or a
    /// rate of 0 lets everything through. Remembers
    /// [`DEFAULT_RATE_LIMIT_CLIENTS`] clients.
    pub fn new(burst: u32, per_second: f64) -> Self {
        Self::with_capacity(burst, per_second, DEFAULT_RATE_LIMIT_CLIENTS)
    }

    /// As [`new`](Self::new), remembering at most about `clients` clients
    /// (rounded up to a multiple of the shard count); a forgotten client
    /// starts again with a full bucket.
    pub fn with_capacity(burst: u32, per_second: f64, clients: usize) -> Self {
        let off = burst == 0 || per_second.is_nan() || per_second <= 0.0;
        let per_shard = clients.max(1).div_ceil(SHARDS);
        RateLimiter {
            burst: if off { 0.0 } else { burst as f64 },
            per_second: if off { 0.0 } else { per_second },
            hasher: RandomState::new(),
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Lru::new(per_shard)))
                .collect(),
        }
    }

    /// Take a token for `ip`'s bucket; false when it has none.
    pub fn allow(&self, ip: IpAddr) -> bool {
        if self.burst <= 0.0 {
            return true;
        }
        let key = bucket_key(ip);
        let shard = (self.hasher.hash_one(key) as usize) % SHARDS;
        let now = Instant::now();
        let mut lru = self.shards[shard].lock().unwrap_or_else(|p| p.into_inner());
        let b = lru.get(key, self.burst, now);
        let refill = now.saturating_duration_since(b.at).as_secs_f64() * self.per_second;
        b.tokens = (b.tokens + refill).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Clients remembered.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).map.len())
            .sum()
    }

    /// Whether no client is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Most clients remembered.
    pub fn capacity(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).cap)
            .sum()
    }
}

/// Open connections per client (IPv4 address or IPv6 /64). Its table holds
/// only clients with a connection open.
#[derive(Debug)]
pub struct ConnLimiter {
    max: u32,
    open: Mutex<HashMap<IpAddr, u32>>,
}

/// One open connection, counted until dropped.
#[derive(Debug)]
pub struct ConnSlot {
    limiter: Arc<ConnLimiter>,
    key: Option<IpAddr>,
}

impl ConnLimiter {
    /// At most `max` connections per client (0: no limit).
    pub fn new(max: u32) -> Arc<Self> {
        Arc::new(ConnLimiter {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for a connection from `ip`, or None when it has `max` open.
    /// `exempt` peers (trusted proxies) are not counted.
    pub fn try_open(self: &Arc<Self>, ip: IpAddr, exempt: bool) -> Option<ConnSlot> {
        if self.max == 0 || exempt {
            return Some(ConnSlot {
                limiter: self.clone(),
                key: None,
            });
        }
        let key = bucket_key(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ConnSlot {
            limiter: self.clone(),
            key: Some(key),
        })
    }

    /// Connections open from `ip`'s key.
    pub fn open_from(&self, ip: IpAddr) -> u32 {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&bucket_key(ip)).copied().unwrap_or(0)
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            let mut open = self.limiter.open.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = open.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn token_bucket() {
        let r = RateLimiter::new(3, 0.001);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(r.allow(ip) && r.allow(ip) && r.allow(ip));
        assert!(!r.allow(ip));
        assert!(r.allow("10.0.0.1".parse().unwrap()));
        let off = RateLimiter::new(0, 2.0);
        assert!((0..100).all(|_| off.allow(ip)));
        let off = RateLimiter::new(20, 0.0);
        assert!((0..100).all(|_| off.allow(ip)));
        let off = RateLimiter::new(20, f64::NAN);
        assert!((0..100).all(|_| off.allow(ip)));
    }

    #[test]
    fn ipv6_shares_a_bucket_per_64() {
        let r = RateLimiter::new(2, 0.001);
        let a: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        let b: IpAddr = "2001:db8:0:1:ffff::2".parse().unwrap();
        let c: IpAddr = "2001:db8:0:2::1".parse().unwrap();
        assert!(r.allow(a) && r.allow(b));
        assert!(!r.allow(a) && !r.allow(b));
        assert!(r.allow(c));
    }

    #[test]
    fn table_bounded_under_100k_addresses() {
        let r = RateLimiter::with_capacity(2, 0.001, 10_000);
        let cap = r.capacity();
        assert!((10_000..10_000 + SHARDS).contains(&cap), "{cap}");
        // A client seen all along stays remembered (and limited).
        let steady: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(r.allow(steady) && r.allow(steady));
        let t = Instant::now();
        for i in 0..100_000u32 {
            let ip = if i % 2 == 0 {
                IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
            } else {
                IpAddr::V6(Ipv6Addr::from(
                    (0x2001_0db8_u128 << 96) | (u128::from(i) << 64) | 7,
                ))
            };
            assert!(r.allow(ip));
            assert!(r.len() <= cap);
            if i % 1000 == 0 {
                assert!(!r.allow(steady));
            }
        }
        assert!(r.len() <= cap && r.len() >= cap - SHARDS * 2, "{}", r.len());
        // Every shard's list and map agree.
        for s in &r.shards {
            let s = s.lock().unwrap();
            let (mut n, mut i) = (0, s.head);
            while i != NIL {
                assert_eq!(s.map[&s.nodes[i as usize].key], i);
                n += 1;
                i = s.nodes[i as usize].next;
            }
            assert_eq!(n, s.map.len());
        }
        eprintln!("100000 addresses in {:?}", t.elapsed());
    }

    #[test]
    fn lru_forgets_least_recently_seen() {
        let mut l = Lru::new(3);
        let now = Instant::now();
        let k = |n: u8| IpAddr::V4(Ipv4Addr::new(10, 0, 0, n));
        for n in 1..=3 {
            l.get(k(n), 1.0, now).tokens = 0.0;
        }
        l.get(k(1), 1.0, now); // 1 is now the most recent
        l.get(k(4), 1.0, now); // evicts 2
        assert!(l.map.contains_key(&k(1)) && !l.map.contains_key(&k(2)));
        assert_eq!(l.get(k(3), 1.0, now).tokens, 0.0);
        assert_eq!(l.get(k(2), 1.0, now).tokens, 1.0);
        assert_eq!(l.map.len(), 3);
    }

    #[test]
    fn connections_per_address() {
        let c = ConnLimiter::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let s1 = c.try_open(a, false).unwrap();
        let _s2 = c.try_open(a, false).unwrap();
        assert!(c.try_open(a, false).is_none());
        assert!(c.try_open(a, true).is_some());
        let _s3 = c.try_open(b, false).unwrap();
        drop(s1);
        assert_eq!(c.open_from(a), 1);
        let _s4 = c.try_open(a, false).unwrap();
        assert!(ConnLimiter::new(0).try_open(a, false).is_some());
        drop((_s2, _s3, _s4));
        assert!(c.open.lock().unwrap().is_empty());
    }
}
