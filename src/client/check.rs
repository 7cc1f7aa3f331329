//! Recovery health: extension discovery ([`Client::server_extensions`])
//! and [`Client::check`], which asks each escrow's server whether it still
//! holds the escrow intact, sending no code and starting no recovery.
//!
//! Rule for every extension: the client never sends our-only methods,
//! keys or kinds to a server that does not list them in `extensions`
//! (python-passcrow servers list nothing: they answer `Unsupported`).

use rand::seq::SliceRandom;

use super::sidecar::{self, Challenge};
use super::{tasks, CallOptions, Client};
use crate::crypto;
use crate::pack::{EscrowRecord, RecoveryPack};
use crate::proto::health::{
    Extensions, HeldState, StatusRequest, StatusResponse, EXTENSIONS_METHOD, STATUS_METHOD,
    TOTP_KIND,
};
use crate::proto::Version;
use crate::{Error, Result};

/// Identity kinds only our servers verify (`totp`: an authenticator app,
/// whose codes the server checks itself), each placed only with a server
/// whose `extensions` lists it.
pub(crate) const EXTENSION_KINDS: &[&str] = &[TOTP_KIND];

/// What one escrow's server says about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EscrowState {
    /// Held, live, not frozen, and (when the side file allows) proven
    /// intact by its digest.
    Held,
    /// The server does not have it (deleted, lost, restored from an old
    /// backup).
    Missing,
    /// The server holds something else under the id (the digest does not
    /// match, or the server cannot read what it stored).
    Altered,
    /// Past its expiration.
    Expired,
    /// Held but frozen: the server allows no more recovery attempts.
    Frozen,
    /// The server did not answer (down, unreachable, or refusing now).
    Unreachable,
    /// The server answers but has no `status` method (python-passcrow):
    /// only its reachability is known.
    Unknown,
}

impl EscrowState {
    /// The word the CLI and the JSON use.
    pub fn as_str(self) -> &'static str {
        match self {
            EscrowState::Held => "held",
            EscrowState::Missing => "missing",
            EscrowState::Altered => "altered",
            EscrowState::Expired => "expired",
            EscrowState::Frozen => "frozen",
            EscrowState::Unreachable => "unreachable",
            EscrowState::Unknown => "unknown",
        }
    }
}

/// Whether a pack can be recovered now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recoverable {
    /// At least min-shares escrows are held.
    Yes,
    /// Fewer, even counting every escrow whose state is unknown.
    No,
    /// It depends on escrows whose servers cannot say (no `status`).
    Unknown,
}

impl Recoverable {
    /// `yes`, `no` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Recoverable::Yes => "yes",
            Recoverable::No => "no",
            Recoverable::Unknown => "unknown",
        }
    }
}

/// One escrow's health.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EscrowHealth {
    /// Its code prefix (`None` for a pack's ephemeral copy, which holds no share).
    pub prefix: Option<char>,
    /// Identity kind.
    pub kind: String,
    /// The server.
    pub server: String,
    /// What the server says.
    pub state: EscrowState,
    /// When it expires (the server's answer when held, else the pack's).
    pub expires: i64,
    /// The digest was checked against the side file with a challenge
    /// never sent before (false: no side file entry, or a reused one).
    pub proven: bool,
    /// Why, for the states that need one (cleaned text).
    pub detail: Option<String>,
}

/// A pack's health.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackHealth {
    /// The pack's name.
    pub name: String,
    /// Escrows needed to recover.
    pub min_shares: u32,
    /// Every escrow, in pack order.
    pub escrows: Vec<EscrowHealth>,
    /// Share escrows held.
    pub healthy: usize,
    /// `healthy - min_shares`: how many more escrows can be lost.
    pub margin: i64,
    /// Recoverable now.
    pub recoverable: Recoverable,
}

/// One status request to make.
struct Probe<'a> {
    index: usize,
    record: &'a EscrowRecord,
    challenge: Option<Challenge>,
}

impl Client {
    /// What `server` offers beyond python-passcrow's protocol (cached per
    /// client): `None` for a server without the `extensions` method.
    /// Errors when the server cannot be asked (unreachable).
    pub fn server_extensions(&self, server: &str) -> Result<Option<Extensions>> {
        if let Some(x) = self
            .extensions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(server)
        {
            return Ok(x.clone());
        }
        let x = match self.rpc::<_, Extensions>(server, EXTENSIONS_METHOD, &serde_json::json!({})) {
            Ok(x) => Some(x),
            Err(Error::Server { message, .. }) if message.starts_with("Unsupported") => None,
            Err(e) => return Err(e),
        };
        self.extensions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(server.to_string(), x.clone());
        Ok(x)
    }

    /// Refuse to place an identity of an our-only `kind` with a server
    /// that does not list it (python-passcrow could not read it on
    /// recovery day). Kinds of the reference make no request.
    pub(crate) fn require_kind(&self, server: &str, kind: &str) -> Result<()> {
        if !EXTENSION_KINDS.contains(&kind) {
            return Ok(());
        }
        match self.server_extensions(server)? {
            Some(x) if x.has_kind(kind) => Ok(()),
            Some(_) => Err(Error::bad_input(format!(
                "{server} does not offer {kind}: identities (its extensions do not list \
                 {kind:?}); place them with a server that does"
            ))),
            None => Err(Error::bad_input(format!(
                "{server} does not offer {kind}: identities: it has no extensions at all \
                 (a python-passcrow server, which cannot check such codes); place them \
                 with a libpasscrow server that lists {kind:?}"
            ))),
        }
    }

    /// Check a pack's escrows without sending a code ([`Client::check_with`]).
    pub fn check(&self, pack: &RecoveryPack) -> Result<PackHealth> {
        self.check_with(pack, &CallOptions::default())
    }

    /// Ask each escrow's server whether it holds the escrow intact: with
    /// the pack's side file, a challenge never sent before whose digest
    /// proves the stored bytes are the ones sent at protect. No code is
    /// sent and nobody is notified. With an anonymity delay in the
    /// pacing, the requests go one at a time in random order with the
    /// delay between every two of them, servers alike, so their timing
    /// does not line up a pack's escrows for colluding servers.
    pub fn check_with(&self, pack: &RecoveryPack, call: &CallOptions) -> Result<PackHealth> {
        let pacing = self.pacing_for(call);
        let mut side = match sidecar::load(&self.packs, &pack.name) {
            Ok(s) => s,
            Err(e) => {
                self.log(&format!("side file unreadable, checking without it: {e}"));
                None
            }
        };
        let prefixes: Vec<Option<char>> = {
            let routed = pack.prefixed_escrows();
            (0..pack.escrow.len())
                .map(|i| routed.get(i).map(|(c, _)| *c))
                .collect()
        };
        let mut probes: Vec<Probe<'_>> = pack
            .escrow
            .iter()
            .enumerate()
            .map(|(index, record)| Probe {
                index,
                record,
                challenge: side.as_mut().and_then(|s| {
                    s.entry_mut(&record.server, &record.response.escrow_data_id)
                        .and_then(|e| e.take())
                }),
            })
            .collect();
        // Challenges are spent before they are sent: a crash never
        // sends one twice as fresh.
        if let Some(s) = &side {
            if let Err(e) = sidecar::save(&self.packs, &pack.name, s) {
                self.log(&format!("could not update the side file: {e}"));
            }
        }
        let one_at_a_time = pacing.delay.is_some();
        if one_at_a_time {
            probes.shuffle(&mut rand::rngs::OsRng);
        }
        let results = tasks::run_tasks(
            &probes,
            &pacing,
            &*self.sleeper,
            |p| {
                if one_at_a_time {
                    String::new()
                } else {
                    p.record.server.clone()
                }
            },
            |p| self.probe(p),
        );
        let mut escrows: Vec<Option<EscrowHealth>> = vec![None; pack.escrow.len()];
        for (p, r) in probes.iter().zip(results) {
            let mut h = match r {
                Ok(h) => h,
                Err(e) => EscrowHealth {
                    prefix: None,
                    kind: String::new(),
                    server: String::new(),
                    state: EscrowState::Unreachable,
                    expires: 0,
                    proven: false,
                    detail: Some(e.to_string()),
                },
            };
            h.prefix = prefixes[p.index];
            h.kind = p.record.kind.clone();
            h.server = p.record.server.clone();
            if h.expires == 0 {
                h.expires = p.record.response.expiration;
            }
            escrows[p.index] = Some(h);
        }
        let escrows: Vec<EscrowHealth> = escrows.into_iter().flatten().collect();
        Ok(summarize(pack, escrows))
    }

    /// One escrow's status (errors: unreachable).
    fn probe(&self, p: &Probe<'_>) -> Result<EscrowHealth> {
        let server = &p.record.server;
        let mut h = EscrowHealth {
            prefix: None,
            kind: String::new(),
            server: String::new(),
            state: EscrowState::Unknown,
            expires: 0,
            proven: false,
            detail: None,
        };
        match self.server_extensions(server)? {
            Some(x) if x.has_method(STATUS_METHOD) => {}
            _ => {
                h.detail = Some("reachable; the server has no status method".into());
                return Ok(h);
            }
        }
        let challenge = match &p.challenge {
            Some(c) => c.bytes,
            None => {
                let mut c = [0u8; 32];
                crypto::random_bytes(&mut c);
                c
            }
        };
        let req = StatusRequest {
            version: Version,
            escrow_data_id: p.record.response.escrow_data_id.clone(),
            challenge: crypto::b64encode(&challenge),
        };
        let resp: StatusResponse = match self.rpc(server, STATUS_METHOD, &req) {
            Ok(r) => r,
            Err(Error::NotFound(m)) => {
                h.state = EscrowState::Missing;
                h.detail = Some(m);
                return Ok(h);
            }
            // Not retried: the per-escrow limit lasts the hour.
            Err(Error::RateLimited { .. }) => {
                h.state = EscrowState::Unreachable;
                h.detail = Some("the server refuses more status requests for now".into());
                return Ok(h);
            }
            Err(e) => return Err(e),
        };
        h.state = match resp.state {
            HeldState::Missing => EscrowState::Missing,
            HeldState::Expired => EscrowState::Expired,
            HeldState::Held => {
                h.expires = resp.expiration.unwrap_or(0);
                let digest = resp
                    .digest
                    .as_deref()
                    .and_then(|d| crypto::b64decode(d).ok());
                match (&p.challenge, digest) {
                    (_, None) => {
                        h.detail = Some("the server cannot read the data it stored".into());
                        EscrowState::Altered
                    }
                    (Some(c), Some(d)) => {
                        if d.len() >= c.expected.len()
                            && crypto::ct_eq(&d[..c.expected.len()], &c.expected)
                        {
                            h.proven = c.fresh;
                            if resp.frozen {
                                EscrowState::Frozen
                            } else {
                                EscrowState::Held
                            }
                        } else {
                            h.detail =
                                Some("the digest does not match the data sent at protect".into());
                            EscrowState::Altered
                        }
                    }
                    // No side file: held by the server's word.
                    (None, Some(_)) if resp.frozen => EscrowState::Frozen,
                    (None, Some(_)) => EscrowState::Held,
                }
            }
        };
        Ok(h)
    }
}

/// Count a pack's healthy share escrows and decide.
pub(crate) fn summarize(pack: &RecoveryPack, escrows: Vec<EscrowHealth>) -> PackHealth {
    let shares = escrows.iter().filter(|e| e.prefix.is_some());
    let (mut healthy, mut unknown) = (0usize, 0usize);
    for e in shares {
        match e.state {
            EscrowState::Held => healthy += 1,
            EscrowState::Unknown => unknown += 1,
            _ => {}
        }
    }
    let n = pack.min_shares as usize;
    let recoverable = if healthy >= n {
        Recoverable::Yes
    } else if healthy + unknown >= n {
        Recoverable::Unknown
    } else {
        Recoverable::No
    };
    PackHealth {
        name: pack.name.clone(),
        min_shares: pack.min_shares,
        healthy,
        margin: healthy as i64 - n as i64,
        recoverable,
        escrows,
    }
}
