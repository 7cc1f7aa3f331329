//! Forget, list and expiring: deleting escrows on their servers, and
//! what the pack directory holds.

use std::time::Duration;

use super::rpc::failure;
use super::{now, tasks, CallOptions, Client, Forgotten, Pacing, PackInfo};
use crate::pack::{EscrowRecord, RecoveryPack};
use crate::proto::{DeletionRequest, DeletionResponse, Version};
use crate::{Error, Failure, Result};

impl Client {
    /// Delete escrows on their servers; returns failures.
    pub(crate) fn delete_escrows(
        &self,
        records: &[EscrowRecord],
        pacing: &Pacing,
    ) -> (usize, Vec<Failure>) {
        let results = tasks::run_tasks(
            records,
            pacing,
            &*self.sleeper,
            |r| r.server.clone(),
            |r| {
                let req = DeletionRequest {
                    version: Version,
                    escrow_data_id: r.response.escrow_data_id.clone(),
                };
                let _: DeletionResponse = self.rpc(&r.server, "deletionrequest", &req)?;
                self.log(&format!("deleted escrow on {}", r.server));
                Ok(())
            },
        );
        let mut ok = 0;
        let mut failures = vec![];
        for (r, res) in records.iter().zip(results) {
            match res {
                Ok(()) => ok += 1,
                Err(e) => failures.push(failure(r, e)),
            }
        }
        (ok, failures)
    }

    /// Delete a pack: its escrows on the servers (unless `local_only`), then
    /// the file. When a server cannot be reached the file is kept, so the
    /// user can try again (or forget locally only).
    pub fn forget(&self, name: &str, local_only: bool) -> Result<Forgotten> {
        self.forget_with(name, local_only, &CallOptions::default())
    }

    /// [`Client::forget`] with this call's own options.
    pub fn forget_with(
        &self,
        name: &str,
        local_only: bool,
        call: &CallOptions,
    ) -> Result<Forgotten> {
        let pack = self.packs.load(name).or_else(|e| match e {
            Error::NotFound(_) => Err(e),
            // An unreadable pack can only be removed locally.
            other if local_only => {
                self.log(&format!("pack unreadable ({other}); removing the file"));
                Ok(RecoveryPack {
                    name: name.into(),
                    created_ts: None,
                    description: None,
                    secret: None,
                    min_shares: 1,
                    shares: vec![],
                    escrow: vec![],
                    is_ephemeral: None,
                    ephemeral_id: None,
                })
            }
            other => Err(other),
        })?;
        let mut out = Forgotten::default();
        if !local_only {
            let (ok, failures) = self.delete_escrows(&pack.escrow, &self.pacing_for(call));
            out.deleted = ok;
            if !failures.is_empty() {
                return Err(Error::Incomplete {
                    operation: "forget",
                    got: ok,
                    needed: pack.escrow.len(),
                    failures,
                });
            }
        }
        self.packs.remove(name)?;
        super::sidecar::remove(&self.packs, name)?;
        Ok(out)
    }

    /// Every pack, sorted by file name.
    pub fn list(&self) -> Result<Vec<PackInfo>> {
        Ok(self
            .packs
            .list()?
            .into_iter()
            .map(|(name, r)| {
                let path = self.packs.path_for(&name).unwrap_or_default();
                match r {
                    Ok(p) => {
                        let mut kinds: Vec<String> =
                            p.escrow.iter().map(|e| e.kind.clone()).collect();
                        kinds.sort();
                        PackInfo {
                            path,
                            created_ts: p.created_ts.unwrap_or(0),
                            expires_ts: p.expires_ts(),
                            description: p.description.clone().unwrap_or_default(),
                            min_shares: p.min_shares,
                            escrows: p.prefixed_escrows().len(),
                            kinds,
                            ephemeral: p.ephemeral_id.is_some(),
                            error: None,
                            name,
                        }
                    }
                    Err(e) => PackInfo {
                        name,
                        path,
                        created_ts: 0,
                        expires_ts: 0,
                        description: String::new(),
                        min_shares: 0,
                        escrows: 0,
                        kinds: vec![],
                        ephemeral: false,
                        error: Some(e.to_string()),
                    },
                }
            })
            .collect())
    }

    /// Packs whose first escrow expires within `within` from now (and
    /// packs that could not be read, so they are not forgotten).
    pub fn expiring(&self, within: Duration) -> Result<Vec<PackInfo>> {
        let limit = crate::util::clock::unix_after(now(), within);
        Ok(self
            .list()?
            .into_iter()
            .filter(|p| p.error.is_some() || p.expires_ts <= limit)
            .collect())
    }
}
