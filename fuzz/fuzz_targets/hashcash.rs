//! Hashcash, as the server reads a payment: `payment::parse_hashcash_cash`
//! and `payment::check_hashcash` (scrypt N=2^8 per check: inputs are kept
//! short), and the whole payment string (`free:0`, `hashcash-B:%x-%x`)
//! through the server's escrow handler (`take_payment` is private) with
//! cheap 1- and 2-bit offers. Input: `TOKEN \0 DATA`. Invariants: no
//! panic; what parses re-formats to a token that parses to the same
//! numbers; a check passes only for a parsed token within the time window.
#![no_main]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use passcrow::payment::{check_hashcash, hashcash_valid, parse_hashcash_cash, HASHCASH_PAST};
use passcrow::server::config::HashcashOffer;
use passcrow::server::{Config, Deliver, Method, Outgoing, Server, ServerResult, SqliteStorage};
use passcrow::testing::{b64encode, seal_with_nonce};
use passcrow::Key32;

const NOW: i64 = 1_800_000_000; // 0x6b49d200

struct Drop;
impl Deliver for Drop {
    fn name(&self) -> &str {
        "drop"
    }
    fn deliver(&self, _msg: &Outgoing) -> ServerResult<()> {
        Ok(())
    }
}

fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        let mut cfg = Config::new("/nonexistent");
        cfg.payment.hashcash = vec![
            HashcashOffer {
                bits: 1,
                seconds: 3600,
            },
            HashcashOffer {
                bits: 2,
                seconds: 7200,
            },
        ];
        let mut d: BTreeMap<String, Arc<dyn Deliver>> = BTreeMap::new();
        d.insert("email".into(), Arc::new(Drop));
        let mut s = Server::with_parts(
            cfg,
            Box::new(SqliteStorage::in_memory().unwrap()),
            &Key32::from_bytes([1; 32]),
            d,
        );
        s.set_clock(Box::new(|| NOW));
        s
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() > 256 {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (token, escrow) = text.split_once('\0').unwrap_or((text, "AAAA"));
    let cash = token.split_once(':').map(|x| x.1).unwrap_or(token);

    let parsed = parse_hashcash_cash(cash);
    if let Some((c, t)) = parsed {
        assert_eq!(parse_hashcash_cash(&format!("{c:x}-{t:x}")), Some((c, t)));
    }
    for bits in [0u32, 1, 2] {
        let ok = check_hashcash(bits, cash, escrow.as_bytes(), NOW);
        if ok {
            let (c, t) = parsed.expect("a passing token parses");
            let t = t as i64;
            assert!(NOW - HASHCASH_PAST < t && t < NOW + 5, "in the window");
            assert!(hashcash_valid(bits, escrow.as_bytes(), c, t as u64));
        }
    }

    // The payment string through the server. escrow-data must be base64
    // of at least 33 bytes, so DATA is padded into such a blob.
    let mut raw = escrow.as_bytes().to_vec();
    raw.resize(raw.len().max(33), 0);
    let data_b64 = b64encode(&raw);
    let pkey = Key32::from_bytes([2; 32]);
    let params = serde_json::json!({
        "kind": "email",
        "expiration": NOW + 3600,
        "payment": token,
    })
    .to_string();
    let sealed = seal_with_nonce(&pkey, &[3; 16], params.as_bytes()).unwrap();
    let req = serde_json::json!({
        "passcrow-escrow-request": "1.0",
        "parameters-key": pkey.to_b64(),
        "parameters": sealed,
        "escrow-data": [data_b64],
    })
    .to_string();
    let a = server().handle(Method::Escrow, req.as_bytes());
    assert!(a.status == 200 || a.is_error(), "status {}", a.status);
});
