//! `extensions` (ours): what this server offers beyond python-passcrow's
//! protocol. Clients read it before using any of it, and never send an
//! extension to a server that does not list it.

use crate::crypto::totp;
use crate::proto::health::{
    Extensions, CHALLENGE_MAX_BYTES, CHALLENGE_MIN_BYTES, DELAY_OPTION, EXTENSIONS_METHOD,
    STATUS_METHOD, TOTP_KIND,
};
use crate::proto::Version;
use crate::server::Server;

impl Server {
    /// Our extensions: methods with their limits, extra identity kinds,
    /// escrow options. Later extensions add their own entries here.
    pub fn extensions(&self) -> Extensions {
        let mut x = Extensions {
            version: Version,
            ..Extensions::default()
        };
        x.methods
            .insert(EXTENSIONS_METHOD.into(), serde_json::json!({}));
        x.methods.insert(
            STATUS_METHOD.into(),
            serde_json::json!({
                "per-escrow-per-hour": self.cfg.status_per_hour,
                "challenge-min-bytes": CHALLENGE_MIN_BYTES,
                "challenge-max-bytes": CHALLENGE_MAX_BYTES,
            }),
        );
        if self.cfg.totp.enabled {
            // What authenticator apps make, and the skew accepted.
            x.kinds.insert(
                TOTP_KIND.into(),
                serde_json::json!({
                    "algorithm": "SHA1",
                    "digits": totp::DIGITS,
                    "period": totp::PERIOD,
                    "skew-steps": totp::SKEW_STEPS,
                }),
            );
        }
        if let Some(max) = self.max_delay() {
            x.escrow_options.insert(
                DELAY_OPTION.into(),
                serde_json::json!({ "max-seconds": max }),
            );
        }
        x
    }
}
