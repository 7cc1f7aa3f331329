//! `policy` and `stats`: what this server offers, and how it is doing.

use crate::proto::{PaymentScheme, ServerPolicy, PROTO_VERSION};
use crate::server::answer::ApiResult;
use crate::server::storage::Counts;
use crate::server::Server;

impl Server {
    /// Our policy.
    pub fn policy(&self) -> ServerPolicy {
        let max = self.cfg.max_expiration_seconds;
        let mut schemes = vec![];
        let p = &self.cfg.payment;
        if p.free_seconds > 0 {
            schemes.push(PaymentScheme {
                scheme: "free".into(),
                scheme_id: "free".into(),
                description: "Freebies".into(),
                expiration_seconds: p.free_seconds.min(max),
                hashcash_bits: None,
                tokens: None,
            });
        }
        for h in &p.hashcash {
            schemes.push(PaymentScheme {
                scheme: "hashcash".into(),
                scheme_id: format!("hashcash-{}", h.bits),
                description: format!("{}-bit scrypt(len=16,n=256,r=8,p=1) collisions", h.bits),
                expiration_seconds: h.seconds.min(max),
                hashcash_bits: Some(h.bits),
                tokens: None,
            });
            if h.seconds >= max {
                break;
            }
        }
        ServerPolicy {
            versions: vec![PROTO_VERSION.into()],
            country_code: self.cfg.country_code.clone(),
            about_url: self.cfg.about_url.clone(),
            kinds: self.kinds(),
            max_request_bytes: self.cfg.max_request_bytes as u64,
            max_expiration_seconds: max,
            max_timeout_seconds: self.cfg.max_timeout_seconds,
            payment_schemes: schemes,
        }
    }

    /// Storage counts, taken at most once per `stats_cache_seconds` (by
    /// the server's clock): counting is a full scan, and `stats` is open
    /// to anyone. Callers arriving during a scan wait for it and share it.
    fn cached_counts(&self) -> ApiResult<Counts> {
        let now = self.now();
        let max_age = i64::try_from(self.cfg.stats_cache_seconds).unwrap_or(i64::MAX);
        let mut cache = self.counts_cache.lock().unwrap_or_else(|p| p.into_inner());
        match *cache {
            // A clock gone backwards counts afresh.
            Some((counts, taken)) if taken <= now && now - taken < max_age => Ok(counts),
            _ => {
                let counts = self.storage.counts()?;
                *cache = Some((counts, now));
                Ok(counts)
            }
        }
    }

    /// The `stats` answer: request counters, storage counts, kinds.
    pub(in crate::server) fn stats(&self) -> ApiResult<serde_json::Value> {
        let counts = self.cached_counts()?;
        let requests = self
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .requests
            .clone();
        Ok(serde_json::json!({
            "version": concat!("libpasscrow-server v", env!("CARGO_PKG_VERSION")),
            "start-ts": self.start_ts,
            "requests": requests,
            "storage": {
                "type": "sqlite",
                "encrypted": true,
                "escrows": counts.escrows,
                "codes": counts.codes,
            },
            "handlers": self.kinds(),
        }))
    }
}
