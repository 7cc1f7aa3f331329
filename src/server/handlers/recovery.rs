//! `recoveryrequest`: trade the pending code (and the escrow key) for the
//! escrowed secret; wrong codes spend attempts.

use crate::proto::{RecoveryRequest, RecoveryResponse, Version};
use crate::server::answer::{ApiError, ApiResult, ErrorKind};
use crate::server::storage::CodeCheck;
use crate::server::Server;

impl Server {
    /// Answer a recovery request.
    pub(in crate::server) fn recovery(&self, body: &[u8]) -> ApiResult<RecoveryResponse> {
        let req: RecoveryRequest = Self::parse(body, "recovery request")?;
        let now = self.now();
        let found = self.load_escrow(&req.escrow_data_id, now)?;
        let (key, sid, blob) = (&found.key, found.sid, &found.blob);
        // The key first: without it nobody can spend this code's attempts.
        let esd = self.open_client_data(blob, &req.escrow_data_key)?;
        let given = self.keys.code_mac(key, req.verification.expose_secret());
        match self.storage.check_code(&sid, &given, now)? {
            CodeCheck::NoCode => Err(ApiError::new(
                ErrorKind::NotFound,
                "No verification code is pending for this escrow; ask for one first",
            )),
            CodeCheck::Expired => Err(ApiError::new(
                ErrorKind::Expired,
                "The verification code has expired; ask for a new one",
            )),
            CodeCheck::Void => Err(ApiError {
                kind: ErrorKind::WrongCode,
                message: "Incorrect verification code: no attempts left, the code is void; \
                          ask for a new one"
                    .into(),
                attempts_left: Some(0),
            }),
            CodeCheck::Right => {
                tracing::info!(id = %sid, "recovered");
                Ok(RecoveryResponse {
                    version: Version,
                    escrow_secret: esd.secret.clone(),
                })
            }
            CodeCheck::Wrong { left } => {
                let message = match left {
                    0 => "Incorrect verification code: no attempts left, the code is now void; \
                          ask for a new one"
                        .to_string(),
                    1 => "Incorrect verification code (1 attempt left)".to_string(),
                    n => format!("Incorrect verification code ({n} attempts left)"),
                };
                Err(ApiError {
                    kind: ErrorKind::WrongCode,
                    message,
                    attempts_left: Some(left),
                })
            }
        }
    }
}
