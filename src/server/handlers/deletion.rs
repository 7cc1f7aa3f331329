//! `deletionrequest`: remove an escrow (and its pending code). Anyone
//! holding the id may; an unknown id is not an error, as in the reference.

use crate::proto::{DeletionRequest, DeletionResponse, Version};
use crate::server::answer::ApiResult;
use crate::server::escrow_id::parse_id;
use crate::server::Server;

impl Server {
    /// Answer a deletion request.
    pub(in crate::server) fn deletion(&self, body: &[u8]) -> ApiResult<DeletionResponse> {
        let req: DeletionRequest = Self::parse(body, "deletion request")?;
        let (key, _) = parse_id(&req.escrow_data_id)?;
        let sid = self.keys.stored_id(&key);
        let existed = self.storage.delete_escrow(&sid)?;
        tracing::info!(id = %sid, existed, "deleted");
        Ok(DeletionResponse {
            version: Version,
            escrow_data_id: Some(req.escrow_data_id),
        })
    }
}
