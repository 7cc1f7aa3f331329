//! Protect and renew: split a fresh pack key, escrow one share per
//! identity (paying each server), write the pack; the ephemeral copy.

use super::check::EXTENSION_KINDS;
use super::sidecar::{self, SideEscrow, SideFile};
use super::{
    now, tasks, CallOptions, Client, Ephemeral, EphemeralInfo, Pacing, ProtectOptions, Protected,
    TotpEnrolment, DEFAULT_PACK_DESCRIPTION,
};
use crate::crypto::{self, shamir, totp, Key32, SecretBytes, SecretString};
use crate::pack::{ephemeral, EscrowRecord, RecoveryPack, VERIFICATION_PREFIXES};
use crate::payment::{self, HashcashOptions};
use crate::policy::{IdentityPolicy, PolicyRequest, RecoveryPolicy};
use crate::proto::health::TOTP_KIND;
use crate::proto::{self, EscrowData, EscrowParameters, EscrowRequest, EscrowResponse, Version};
use crate::{Error, Failure, Result};

impl Client {
    fn hashcash_opts(&self) -> HashcashOptions<'_> {
        HashcashOptions {
            threads: self.cfg.hashcash_threads,
            max_time: self.cfg.hashcash_max_time,
            cancel: Some(&self.cancel),
            progress: None,
        }
    }

    /// Build and send one escrow request; returns the record for the pack,
    /// the escrow-data blob as sent (for the side file) and, for a `totp:`
    /// identity, the enrolment URI of the secret made for it (in the
    /// escrow data only).
    fn escrow_one(&self, job: &EscrowJob<'_>) -> Result<Escrowed> {
        let idp = job.idp;
        let server = idp
            .server
            .as_deref()
            .ok_or_else(|| Error::bad_input(format!("no server for {}", idp.id)))?;
        let sp = self.server_policy(server)?;
        for k in std::iter::once(idp.id.kind()).chain(idp.notify.as_ref().map(|n| n.kind())) {
            // Our kinds (an authenticator app) are offered through the
            // extensions, never in the reference's policy object.
            if EXTENSION_KINDS.contains(&k) {
                self.require_kind(server, k)?;
                continue;
            }
            if !sp.kinds.iter().any(|x| x == k) {
                return Err(Error::bad_input(format!(
                    "{server} cannot deliver to {k}: identities (it serves {})",
                    sp.kinds.join(", ")
                )));
            }
        }
        // A release delay only where the server offers one that long.
        if let Some(d) = idp.delay_seconds {
            match self.server_extensions(server)?.and_then(|x| x.max_delay()) {
                None => {
                    return Err(Error::bad_input(format!(
                        "{server} does not offer a release delay (its extensions list no \
                         `delay` escrow option); place delay= identities with a server that does"
                    )))
                }
                Some(max) if i64::from(d) > max => {
                    return Err(Error::bad_input(format!(
                        "{server} offers release delays of at most {max} seconds, not {d}"
                    )))
                }
                Some(_) => {}
            }
        }
        // A fresh TOTP secret per `totp:` identity, placed in the escrow
        // data only: the server learns it when recovery starts, the user
        // enrols it once, this device never stores it.
        let totp_secret = (idp.id.kind() == TOTP_KIND).then(totp::new_secret);
        let lifetime = job.policy.expiration_days as i64 * 86400;
        let scheme = payment::choose(&sp, lifetime)?.clone();
        let timeout = idp
            .timeout_seconds
            .map(|t| t as i64)
            .unwrap_or(job.policy.timeout_minutes as i64 * 60);
        let data = EscrowData {
            description: job.verify_description.to_string(),
            secret: job.secret.clone(),
            verify: idp.id.clone(),
            timeout: Some(timeout),
            notify: idp.notify.clone(),
            totp_secret: totp_secret.clone(),
            release_delay: idp.delay_seconds.map(i64::from),
        };
        let recovery_key = match job.key {
            Some(k) => k.clone(),
            None => crypto::random_key(),
        };
        let data_json = SecretBytes::new(proto::to_reference_json(&data).into_bytes());
        let data_blob = crypto::seal(&recovery_key, data_json.expose_secret())?;
        let progress = self.progress.clone();
        let pf = move |p: payment::Progress| {
            if let Some(f) = &progress {
                f(p)
            }
        };
        let mut opts = self.hashcash_opts();
        opts.progress = Some(&pf);
        let token = payment::make_token(&scheme, &data_blob, &opts)?;
        let params = EscrowParameters {
            kind: idp.id.kind().to_string(),
            expiration: now().saturating_add(lifetime),
            payment: token,
            prefer_id: job.prefer_id.clone(),
        };
        let pkey = crypto::random_key();
        let req = EscrowRequest {
            version: Version,
            parameters: crypto::seal(&pkey, proto::to_reference_json(&params).as_bytes())?,
            parameters_key: pkey.to_b64(),
            escrow_data: vec![data_blob.clone()],
        };
        let resp: EscrowResponse = self.rpc(server, "escrowrequest", &req)?;
        self.log(&format!(
            "escrowed share {} ({}) with {server}, paid {}",
            job.label,
            idp.id.kind(),
            scheme.scheme_id
        ));
        Ok(Escrowed {
            record: EscrowRecord {
                kind: idp.id.kind().to_string(),
                server: server.to_string(),
                recovery_key: SecretString::new(recovery_key.to_b64()),
                response: resp,
            },
            blob: data_blob,
            totp_uri: totp_secret.map(|s| totp::otpauth_uri(idp.id.address(), &s)),
        })
    }

    /// Protect `secret` under `name` with `policy`.
    ///
    /// Splits a fresh pack key n-of-m (padded to a threshold of 3 with local
    /// shares when n < 3, as the reference does), escrows one share per
    /// identity, then writes the pack. If any escrow fails, the escrows that
    /// were made are deleted again and nothing is written.
    pub fn protect(
        &self,
        name: &str,
        secret: &[u8],
        policy: &RecoveryPolicy,
        opts: &ProtectOptions,
    ) -> Result<Protected> {
        self.protect_with(name, secret, policy, opts, &CallOptions::default())
    }

    /// [`Client::protect`] with this call's own options.
    pub fn protect_with(
        &self,
        name: &str,
        secret: &[u8],
        policy: &RecoveryPolicy,
        opts: &ProtectOptions,
        call: &CallOptions,
    ) -> Result<Protected> {
        let pacing = self.pacing_for(call);
        crate::pack::pack_file_name(name)?;
        let old = if opts.ephemeral == Ephemeral::Only {
            None
        } else {
            match self.packs.load(name) {
                Ok(p) if opts.replace => Some(p),
                Ok(_) => {
                    return Err(Error::bad_input(format!(
                    "a recovery pack named {name:?} exists; forget it first, or replace (renew) it"
                )))
                }
                Err(Error::NotFound(_)) => None,
                Err(_) if opts.replace => None,
                Err(e) => {
                    return Err(Error::bad_input(format!(
                        "a pack named {name:?} exists but cannot be read ({e}); remove it first"
                    )))
                }
            }
        };
        let reserve = if opts.ephemeral == Ephemeral::No {
            0
        } else {
            1
        };
        if reserve == 1 && policy.ids.len() < 2 {
            return Err(Error::bad_input(
                "ephemeral protection needs at least 2 identities",
            ));
        }
        policy.validate(reserve)?;
        let (n, m) = policy.absolute_ratio(reserve)?;
        let warnings = super::warnings::policy_warnings(policy, reserve, n);
        for w in &warnings {
            self.log(&format!("warning: {w}"));
        }
        // The ephemeral keys take seconds of scrypt: they are derived on
        // their own thread while the shares are escrowed.
        let user_key = (reserve == 1).then(ephemeral::new_user_key);
        let conc = self.cfg.ephemeral_kdf;
        std::thread::scope(|scope| {
            let derivation = user_key.as_ref().map(|k| {
                self.log("deriving the ephemeral keys (scrypt, a few seconds)");
                std::thread::Builder::new()
                    .name("passcrow-ephemeral".into())
                    .spawn_scoped(scope, move || ephemeral::all_keys(k.expose_secret(), conc))
                    .ok()
            });
            let extra = 3u32.saturating_sub(n);
            let key = crypto::random_pack_key();
            let shares = shamir::split(
                key.expose_secret(),
                (n + extra) as usize,
                (m + extra) as usize,
            )?;
            self.log(&format!(
                "prepared {} shares ({} local, {} needed) for {name}",
                m + extra,
                extra,
                n + extra
            ));
            let secret_blob = RecoveryPack::seal_secret(&key, secret)?;
            drop(key);

            let jobs: Vec<EscrowJob<'_>> = (0..m as usize)
                .map(|i| EscrowJob {
                    idp: &policy.ids[reserve + i],
                    policy,
                    secret: shares[i].clone(),
                    key: None,
                    prefer_id: None,
                    verify_description: &opts.verify_description,
                    label: format!("{}/{}", i + 1, m),
                })
                .collect();
            let results = tasks::run_tasks(
                &jobs,
                &pacing,
                &*self.sleeper,
                |j| j.idp.server.clone().unwrap_or_default(),
                |j| self.escrow_one(j),
            );
            let mut records = vec![];
            let mut blobs = vec![];
            let mut failures = vec![];
            let mut enrolments = vec![];
            for (j, r) in jobs.iter().zip(results) {
                match r {
                    Ok(done) => {
                        if let Some(uri) = done.totp_uri {
                            enrolments.push(TotpEnrolment {
                                label: j.idp.id.address().to_string(),
                                server: done.record.server.clone(),
                                // Escrows route in the order they are made.
                                prefix: VERIFICATION_PREFIXES.chars().nth(records.len()),
                                uri,
                            });
                        }
                        records.push(done.record);
                        blobs.push(done.blob);
                    }
                    Err(e) => failures.push(Failure {
                        server: j.idp.server.clone().unwrap_or_default(),
                        escrow_id: None,
                        message: e.to_string(),
                    }),
                }
            }
            if !failures.is_empty() {
                let got = records.len();
                self.delete_escrows(&records, &pacing);
                return Err(Error::Incomplete {
                    operation: "protect",
                    got,
                    needed: m as usize,
                    failures,
                });
            }
            let mut pack = RecoveryPack {
                name: name.to_string(),
                created_ts: Some(now()),
                description: Some(opts.pack_description.clone()),
                secret: Some(secret_blob),
                min_shares: n,
                shares: shares[m as usize..].to_vec(),
                escrow: records,
                is_ephemeral: None,
                ephemeral_id: None,
            };

            let mut eph_info = None;
            if reserve == 1 {
                let (Some(user_key), Some(derivation)) = (user_key.clone(), derivation) else {
                    return Err(Error::bad_input("no ephemeral user key"));
                };
                let keys = match derivation {
                    Some(h) => h.join().unwrap_or_else(|_| {
                        Err(Error::bad_input("the key derivation thread failed"))
                    }),
                    // No thread could be started: derive here.
                    None => ephemeral::all_keys(user_key.expose_secret(), conc),
                };
                let eph = keys.and_then(|keys| {
                    self.escrow_ephemeral(&mut pack, policy, opts, &pacing, user_key, keys)
                });
                match eph {
                    Ok((info, blob, uri)) => {
                        if opts.ephemeral == Ephemeral::Both {
                            blobs.push(blob);
                        }
                        if let Some(uri) = uri {
                            enrolments.push(TotpEnrolment {
                                label: policy.ids[0].id.address().to_string(),
                                server: info.server.clone(),
                                prefix: None,
                                uri,
                            });
                        }
                        eph_info = Some(info)
                    }
                    Err(e) => {
                        self.delete_escrows(&pack.escrow, &pacing);
                        return Err(e);
                    }
                }
            }
            let mut path = None;
            if opts.ephemeral != Ephemeral::Only {
                match self.packs.save(name, &pack) {
                    Ok(p) => path = Some(p),
                    Err(e) => {
                        self.delete_escrows(&pack.escrow, &pacing);
                        return Err(e);
                    }
                }
                // The side file is ours alone: a failure to write it costs
                // the health check its proof, never the pack.
                if let Err(e) = self.write_side_file(name, &pack, &blobs) {
                    self.log(&format!("could not write the health side file: {e}"));
                }
            }
            let mut cleanup_failures = vec![];
            if let Some(old) = old {
                let (_, f) = self.delete_escrows(&old.escrow, &pacing);
                cleanup_failures = f;
            }
            Ok(Protected {
                pack,
                path,
                ephemeral: eph_info,
                cleanup_failures,
                warnings,
                totp: enrolments,
            })
        })
    }

    /// The side file of a pack just written: `blobs[i]` is what was sent
    /// for `pack.escrow[i]`.
    fn write_side_file(&self, name: &str, pack: &RecoveryPack, blobs: &[String]) -> Result<()> {
        let entries = pack
            .escrow
            .iter()
            .zip(blobs)
            .map(|(r, b)| SideEscrow::new(&r.server, &r.response.escrow_data_id, b))
            .collect::<Result<Vec<_>>>()?;
        sidecar::save(&self.packs, name, &SideFile::new(now(), entries))
    }

    fn escrow_ephemeral(
        &self,
        pack: &mut RecoveryPack,
        policy: &RecoveryPolicy,
        opts: &ProtectOptions,
        pacing: &Pacing,
        user_key: SecretString,
        (id, ekey, pkey): (String, Key32, Key32),
    ) -> Result<(EphemeralInfo, String, Option<SecretString>)> {
        let blob = ephemeral::seal_pack(pack, &pkey)?;
        let job = EscrowJob {
            idp: &policy.ids[0],
            policy,
            secret: SecretString::new(blob),
            key: Some(&ekey),
            prefer_id: Some(id.clone()),
            verify_description: &opts.verify_description,
            label: "ephemeral".into(),
        };
        let jobs = [job];
        let mut results = tasks::run_tasks(
            &jobs,
            pacing,
            &*self.sleeper,
            |j| j.idp.server.clone().unwrap_or_default(),
            |j| self.escrow_one(j),
        );
        let Escrowed {
            record: rec,
            blob,
            totp_uri,
        } = results
            .pop()
            .unwrap_or_else(|| Err(Error::Transport("not run".into())))?;
        let got = &rec.response.escrow_data_id;
        if got != &id && !got.ends_with(&format!("-{id}")) {
            self.delete_escrows(std::slice::from_ref(&rec), pacing);
            return Err(Error::Server {
                server: rec.server.clone(),
                message: "the server refused the ephemeral escrow id".into(),
            });
        }
        let server = rec.server.clone();
        let expiration = rec.response.expiration;
        let mut printed = rec.clone();
        printed.recovery_key = user_key.clone();
        if opts.ephemeral == Ephemeral::Both {
            pack.escrow.push(rec);
            pack.ephemeral_id = Some(SecretString::new(format!(
                "{server}:{}",
                user_key.expose_secret()
            )));
        }
        Ok((
            EphemeralInfo {
                server,
                user_key,
                expiration,
                record: printed,
            },
            blob,
            totp_uri,
        ))
    }

    /// Renew a pack: escrow `secret` afresh (under `policy`, or the
    /// defaults when `None`), write the new pack over the old one, and only
    /// then delete the old escrows. A pack that had an ephemeral copy gets
    /// a new one (and a new user key).
    pub fn renew(
        &self,
        name: &str,
        secret: &[u8],
        policy: Option<&RecoveryPolicy>,
    ) -> Result<Protected> {
        self.renew_with(name, secret, policy, &CallOptions::default())
    }

    /// [`Client::renew`] with this call's own options.
    pub fn renew_with(
        &self,
        name: &str,
        secret: &[u8],
        policy: Option<&RecoveryPolicy>,
        call: &CallOptions,
    ) -> Result<Protected> {
        let old = self.packs.load(name)?;
        let default_policy;
        let policy = match policy {
            Some(p) => p,
            None => {
                default_policy = self.policy(&PolicyRequest::default())?;
                &default_policy
            }
        };
        let opts = ProtectOptions {
            ephemeral: if old.ephemeral_id.is_some() {
                Ephemeral::Both
            } else {
                Ephemeral::No
            },
            pack_description: old
                .description
                .clone()
                .unwrap_or_else(|| DEFAULT_PACK_DESCRIPTION.into()),
            replace: true,
            ..Default::default()
        };
        self.protect_with(name, secret, policy, &opts, call)
    }
}

/// One escrow made.
struct Escrowed {
    record: EscrowRecord,
    blob: String,
    totp_uri: Option<SecretString>,
}

/// One escrow to make.
struct EscrowJob<'a> {
    idp: &'a IdentityPolicy,
    policy: &'a RecoveryPolicy,
    secret: SecretString,
    key: Option<&'a Key32>,
    prefer_id: Option<String>,
    verify_description: &'a str,
    label: String,
}
