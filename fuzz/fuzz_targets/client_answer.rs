//! Server answers as the client reads them: `proto::error_answer` and
//! `proto::parse::<T>` for every answer type, plus the whole client path
//! (`Client::server_policy` over a transport that returns the fuzz input
//! with a status chosen by its first byte: error answer, status, typed
//! answer, version check). Invariants: no panic; a typed answer that
//! parses serialises (serde and the reference layout) to JSON that parses
//! back to the same JSON.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use passcrow::client::{
    Client, ClientConfig, HttpRequest, HttpResponse, Transport, TransportError,
};
use passcrow::proto::{
    self, DeletionResponse, EscrowResponse, RecoveryResponse, ServerPolicy, VerificationResponse,
};

struct Canned(Mutex<HttpResponse>);

impl Transport for Canned {
    fn post(&self, _request: &HttpRequest<'_>) -> Result<HttpResponse, TransportError> {
        Ok(self.0.lock().unwrap().clone())
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    cfg: ClientConfig,
    transport: Arc<Canned>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ClientConfig::new(dir.path(), dir.path());
        let transport = Arc::new(Canned(Mutex::new(HttpResponse {
            status: 200,
            body: vec![],
        })));
        Fixture {
            _dir: dir,
            cfg,
            transport,
        }
    })
}

macro_rules! round_trip {
    ($t:ty, $data:expr) => {
        if let Ok(v) = proto::parse::<$t>($data, stringify!($t)) {
            let j = serde_json::to_string(&v).unwrap();
            let v2: $t = proto::parse(j.as_bytes(), "re-serialised").expect("re-parse");
            assert_eq!(serde_json::to_string(&v2).unwrap(), j, "{}", stringify!($t));
            let r = proto::to_reference_json(&v);
            let v3: $t = proto::parse(r.as_bytes(), "reference layout").expect("re-parse");
            assert_eq!(serde_json::to_string(&v3).unwrap(), j, "{}", stringify!($t));
        }
    };
}

const STATUS: [u16; 8] = [200, 200, 200, 400, 403, 404, 429, 500];

fuzz_target!(|data: &[u8]| {
    if let Some(e) = proto::error_answer(data) {
        let _ = format!("{e:?}");
    }
    round_trip!(ServerPolicy, data);
    round_trip!(EscrowResponse, data);
    round_trip!(VerificationResponse, data);
    round_trip!(RecoveryResponse, data);
    round_trip!(DeletionResponse, data);

    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let f = fixture();
    *f.transport.0.lock().unwrap() = HttpResponse {
        status: STATUS[(sel & 7) as usize],
        body: body.to_vec(),
    };
    // A fresh client each time: it caches server policies.
    let client = Client::with_transport(f.cfg.clone(), f.transport.clone()).unwrap();
    let _ = client.server_policy("fuzz.example");
});
