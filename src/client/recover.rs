//! Packs, verify and recover: ask the servers for codes, route the codes
//! the user typed to their escrows, combine the shares and open the
//! secret (or restore an ephemeral pack).

use super::rpc::failure;
use super::{tasks, CallOptions, Client, Hint, Recovered, Verification};
use crate::crypto::{shamir, Key32, SecretBytes, SecretString};
use crate::pack::{ephemeral, EscrowRecord, RecoveryPack};
use crate::proto::health::TOTP_KIND;
use crate::proto::{
    EscrowResponse, RecoveryRequest, RecoveryResponse, VerificationRequest, VerificationResponse,
    Version,
};
use crate::{Error, Result};

/// Normalise a typed code: trim, drop inner blanks and dashes, upper-case,
/// and forgive `O`→`0`, `L`→`1`, `I`→`1` (no prefix uses those letters).
pub fn normalize_code(code: &str) -> SecretString {
    let s: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'L' | 'I' => '1',
            u => u,
        })
        .collect();
    SecretString::new(s)
}

impl Client {
    /// Load a pack by name, or make the stand-in for `SERVER:USER_KEY`
    /// (ephemeral recovery: three scrypt derivations, a few seconds).
    pub fn pack(&self, name: &str) -> Result<RecoveryPack> {
        match self.packs.load(name) {
            Err(Error::NotFound(msg)) => {
                if !name.contains(':') {
                    return Err(Error::NotFound(msg));
                }
                let (server, key) = ephemeral::split_id(name)?;
                // A derivation left from an earlier stand-in ends first, so
                // no more than two run at once.
                let earlier = self.take_pack_key(None);
                drop(earlier.map(|p| p.handle.join()));
                let (id, ekey) =
                    ephemeral::lookup_keys(key.expose_secret(), self.cfg.ephemeral_kdf)?;
                self.start_pack_key(&key);
                Ok(RecoveryPack {
                    name: name.to_string(),
                    created_ts: None,
                    description: None,
                    secret: None,
                    min_shares: 1,
                    shares: vec![],
                    escrow: vec![EscrowRecord {
                        kind: "ephemeral".into(),
                        server,
                        recovery_key: SecretString::new(ekey.to_b64()),
                        response: EscrowResponse {
                            version: Version,
                            expiration: 0,
                            escrow_data_id: id,
                        },
                    }],
                    is_ephemeral: Some(true),
                    ephemeral_id: None,
                })
            }
            other => other,
        }
    }

    /// Ask every escrow's server to send a verification code.
    pub fn verify(&self, pack: &RecoveryPack) -> Result<Verification> {
        self.verify_with(pack, &CallOptions::default())
    }

    /// [`Client::verify`] with this call's own options.
    pub fn verify_with(&self, pack: &RecoveryPack, call: &CallOptions) -> Result<Verification> {
        let escrows: Vec<(char, EscrowRecord)> = pack
            .prefixed_escrows()
            .into_iter()
            .map(|(c, e)| (c, e.clone()))
            .collect();
        let results = tasks::run_tasks(
            &escrows,
            &self.pacing_for(call),
            &*self.sleeper,
            |(_, e)| e.server.clone(),
            |(prefix, e)| {
                let req = VerificationRequest {
                    version: Version,
                    language: self.cfg.language.clone(),
                    prefix: prefix.to_string(),
                    escrow_data_id: e.response.escrow_data_id.clone(),
                    escrow_data_key: e.recovery_key.clone(),
                };
                let r: VerificationResponse = self.rpc(&e.server, "verificationrequest", &req)?;
                self.log(&format!("verification {prefix} started on {}", e.server));
                Ok(r)
            },
        );
        let mut hints = vec![];
        let mut failures = vec![];
        let mut refused: Option<Error> = None;
        for ((prefix, e), r) in escrows.iter().zip(results) {
            match r {
                Ok(v) => hints.push(Hint {
                    prefix: *prefix,
                    kind: e.kind.clone(),
                    hint: v.hint,
                    expiration: v.expiration,
                    action_url: v.action_url,
                    server: e.server.clone(),
                }),
                Err(err) => {
                    if refused.is_none() {
                        refused = actionable(&err);
                    }
                    failures.push(failure(e, err));
                }
            }
        }
        if hints.len() < pack.min_shares as usize {
            // Not enough codes can come, and a refusal says what to do (a
            // frozen escrow: protect again): that, whatever else failed.
            if let Some(r) = refused {
                return Err(r);
            }
            return Err(Error::Incomplete {
                operation: "verify",
                got: hints.len(),
                needed: pack.min_shares as usize,
                failures,
            });
        }
        Ok(Verification {
            hints,
            failures,
            min_shares: pack.min_shares,
        })
    }

    /// Recover with the codes the user received.
    pub fn recover<S: AsRef<str>>(&self, pack: &RecoveryPack, codes: &[S]) -> Result<Recovered> {
        self.recover_with(pack, codes, &CallOptions::default())
    }

    /// [`Client::recover`] with this call's own options.
    pub fn recover_with<S: AsRef<str>>(
        &self,
        pack: &RecoveryPack,
        codes: &[S],
        call: &CallOptions,
    ) -> Result<Recovered> {
        let routes = pack.prefixed_escrows();
        let mut by_prefix: Vec<(char, SecretString, EscrowRecord)> = vec![];
        for c in codes {
            let Some((p, code, esc)) = route_code(pack, &routes, c.as_ref())? else {
                continue;
            };
            by_prefix.retain(|(x, _, _)| *x != p);
            by_prefix.push((p, code, esc.clone()));
        }
        let need = pack.min_shares as usize;
        if by_prefix.len() < need {
            return Err(Error::bad_input(format!(
                "need at least {need} verification codes, got {}",
                by_prefix.len()
            )));
        }
        let results = tasks::run_tasks(
            &by_prefix,
            &self.pacing_for(call),
            &*self.sleeper,
            |(_, _, e)| e.server.clone(),
            |(p, code, e)| {
                let req = RecoveryRequest {
                    version: Version,
                    verification: code.clone(),
                    escrow_data_id: e.response.escrow_data_id.clone(),
                    escrow_data_key: e.recovery_key.clone(),
                };
                let r: RecoveryResponse =
                    self.rpc(&e.server, "recoveryrequest", &req)
                        .map_err(|err| match err {
                            Error::WrongCode { attempts_left, .. } => Error::WrongCode {
                                prefix: Some(*p),
                                attempts_left,
                            },
                            other => other,
                        })?;
                self.log(&format!("share {p} recovered from {}", e.server));
                Ok(r.escrow_secret)
            },
        );
        let mut got: Vec<SecretString> = vec![];
        let mut failures = vec![];
        // A wrong code first (type it again), else a frozen escrow or a
        // stopped release (protect again; the owner said no).
        let mut wrong: Option<Error> = None;
        let mut settled: Option<Error> = None;
        let mut pending: Vec<(i64, String)> = vec![];
        for ((_, _, e), r) in by_prefix.iter().zip(results) {
            match r {
                Ok(s) => got.push(s),
                Err(Error::Pending { release_at, server }) => pending.push((release_at, server)),
                Err(err) => {
                    let slot = if matches!(err, Error::WrongCode { .. }) {
                        &mut wrong
                    } else {
                        &mut settled
                    };
                    if slot.is_none() {
                        *slot = actionable(&err);
                    }
                    failures.push(failure(e, err));
                }
            }
        }
        if got.len() < need && got.len() + pending.len() >= need {
            // When the last of the shares still needed is released.
            pending.sort_unstable();
            let (release_at, server) = pending[need - got.len() - 1].clone();
            self.log(&format!(
                "{} share(s) pending a release delay, until {release_at}",
                pending.len()
            ));
            return Err(Error::Pending { server, release_at });
        }
        if got.len() < need {
            if let Some(w) = wrong.or(settled) {
                return Err(w);
            }
            return Err(Error::Incomplete {
                operation: "recover",
                got: got.len(),
                needed: need,
                failures,
            });
        }
        if pack.is_ephemeral_stub() {
            let (_, user_key) = ephemeral::split_id(&pack.name)?;
            let pkey = match self.take_pack_key(Some(&user_key)) {
                Some(p) => p.handle.join().unwrap_or_else(|_| {
                    Err(Error::bad_input("the key derivation thread failed"))
                })?,
                None => ephemeral::pack_key(user_key.expose_secret())?,
            };
            let mut ep = ephemeral::open_pack(got[0].expose_secret(), &pkey)?;
            let name = user_key.expose_secret().to_string();
            ep.name = name.clone();
            self.packs.save(&name, &ep)?;
            return Ok(Recovered::Pack { name, pack: ep });
        }
        let secret = combine_and_open(pack, &got)?;
        self.note_review(&pack.name);
        Ok(Recovered::Secret(secret))
    }
}

/// A copy of `err` when it tells the user what to do better than a bare
/// `Incomplete` would: a wrong code (type it again), a frozen escrow
/// (protect again), a stopped release (the owner said no).
fn actionable(err: &Error) -> Option<Error> {
    match err {
        Error::WrongCode {
            prefix,
            attempts_left,
        } => Some(Error::WrongCode {
            prefix: *prefix,
            attempts_left: *attempts_left,
        }),
        Error::Frozen { server } => Some(Error::Frozen {
            server: server.clone(),
        }),
        Error::Stopped { server } => Some(Error::Stopped {
            server: server.clone(),
        }),
        _ => None,
    }
}

/// True for a code as an authenticator app shows it: exactly 6 digits
/// (codes servers send are a prefix and 6 or 7 digits).
fn is_bare_totp_code(code: &str) -> bool {
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
}

/// Route one typed code to its escrow: `(prefix, code to send, escrow)`,
/// or `None` for a blank one.
///
/// Sent codes start with their escrow's prefix. An authenticator (`totp:`)
/// code is typed as the app shows it, 6 digits: it goes to the pack's one
/// authenticator escrow (the one escrow of an ephemeral stand-in); with
/// several, the user types the prefix shown for that app entry first
/// (`3` + `123456`), and the prefix is taken off before it is sent.
fn route_code<'a>(
    pack: &RecoveryPack,
    routes: &[(char, &'a EscrowRecord)],
    typed: &str,
) -> Result<Option<(char, SecretString, &'a EscrowRecord)>> {
    let code = normalize_code(typed);
    let text = code.expose_secret();
    let Some(p) = text.chars().next() else {
        return Ok(None);
    };
    if is_bare_totp_code(text) {
        let stub = pack.is_ephemeral_stub();
        let apps: Vec<&(char, &EscrowRecord)> = routes
            .iter()
            .filter(|(_, e)| stub || e.kind == TOTP_KIND)
            .collect();
        return match apps.as_slice() {
            [(p, e)] => Ok(Some((*p, code.clone(), *e))),
            [] => Err(Error::bad_input(
                "a 6-digit code is an authenticator app's, but this pack has no \
                 authenticator (totp:) escrow; codes sent by e-mail or SMS start with \
                 their prefix",
            )),
            many => Err(Error::bad_input(format!(
                "this pack has {} authenticator (totp:) escrows: type the prefix shown for \
                 the app entry before its 6 digits (prefixes {})",
                many.len(),
                many.iter()
                    .map(|(p, _)| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        };
    }
    let Some((_, esc)) = routes.iter().find(|(x, _)| *x == p) else {
        return Err(Error::bad_input(format!(
            "a code starts with {p:?}, which matches none of this pack's {} escrows",
            routes.len()
        )));
    };
    if esc.kind == TOTP_KIND {
        let rest = &text[p.len_utf8()..];
        if !is_bare_totp_code(rest) {
            return Err(Error::bad_input(format!(
                "the code for escrow {p:?} is an authenticator app's: its 6 digits, \
                 alone or after {p:?}"
            )));
        }
        return Ok(Some((p, SecretString::new(rest.to_string()), *esc)));
    }
    Ok(Some((p, code.clone(), *esc)))
}

/// Combine server shares with the pack's local shares and open the secret.
/// When more shares than needed arrived and they do not agree (a server
/// returned garbage), subsets are tried.
fn combine_and_open(pack: &RecoveryPack, got: &[SecretString]) -> Result<SecretBytes> {
    let mut all: Vec<&str> = got.iter().map(|s| s.expose_secret()).collect();
    all.extend(pack.shares.iter().map(|s| s.expose_secret()));
    let threshold = pack.min_shares as usize + pack.shares.len();
    let attempt = |subset: &[&str]| -> Result<SecretBytes> {
        let key = shamir::combine(subset)?;
        pack.open_secret(&key)
    };
    let first = attempt(&all);
    if first.is_ok() || all.len() <= threshold {
        return first;
    }
    // Try subsets of size `threshold` that keep all local shares.
    let remote: Vec<&str> = got.iter().map(|s| s.expose_secret()).collect();
    let need_remote = pack.min_shares as usize;
    let mut tried = 0;
    let mut idx: Vec<usize> = (0..need_remote).collect();
    loop {
        let mut subset: Vec<&str> = idx.iter().map(|i| remote[*i]).collect();
        subset.extend(pack.shares.iter().map(|s| s.expose_secret()));
        if let Ok(s) = attempt(&subset) {
            return Ok(s);
        }
        tried += 1;
        if tried > 500 || !next_combination(&mut idx, remote.len()) {
            return first;
        }
    }
}

fn next_combination(idx: &mut [usize], n: usize) -> bool {
    let k = idx.len();
    for i in (0..k).rev() {
        if idx[i] < n - k + i {
            idx[i] += 1;
            for j in i + 1..k {
                idx[j] = idx[j - 1] + 1;
            }
            return true;
        }
    }
    false
}

/// A pack key being derived on its own thread, for the user key it is
/// derived from.
pub(super) struct PendingPackKey {
    user_key: SecretString,
    handle: std::thread::JoinHandle<Result<Key32>>,
}

impl Client {
    /// Start deriving the pack key of `user_key` on its own thread (the
    /// derivation that only the last step of an ephemeral recovery needs:
    /// it runs while the user waits for codes). Without a thread, nothing
    /// is started and `recover` derives it.
    fn start_pack_key(&self, user_key: &SecretString) {
        let k = user_key.clone();
        let started = std::thread::Builder::new()
            .name("passcrow-pack-key".into())
            .spawn(move || ephemeral::pack_key(k.expose_secret()));
        if let Ok(handle) = started {
            let mut slot = self
                .pending_pack_key
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            *slot = Some(PendingPackKey {
                user_key: user_key.clone(),
                handle,
            });
        }
    }

    /// Take the pending pack key derivation: any (`None`), or only the one
    /// for `user_key`.
    fn take_pack_key(&self, user_key: Option<&SecretString>) -> Option<PendingPackKey> {
        let mut slot = self
            .pending_pack_key
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match user_key {
            None => slot.take(),
            Some(k)
                if slot
                    .as_ref()
                    .is_some_and(|p| p.user_key.ct_eq(k.expose_secret())) =>
            {
                slot.take()
            }
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_forgiven() {
        assert_eq!(normalize_code(" a12o45l ").expose_secret(), "A120451");
        assert_eq!(normalize_code("1 234-567").expose_secret(), "1234567");
    }

    fn pack_of(kinds: &[&str], stub: bool) -> RecoveryPack {
        RecoveryPack {
            name: "p".into(),
            created_ts: None,
            description: None,
            secret: None,
            min_shares: 1,
            shares: vec![],
            escrow: kinds
                .iter()
                .map(|k| EscrowRecord {
                    kind: k.to_string(),
                    server: "s".into(),
                    recovery_key: SecretString::new("k".into()),
                    response: EscrowResponse {
                        version: Version,
                        expiration: 0,
                        escrow_data_id: "x".into(),
                    },
                })
                .collect(),
            is_ephemeral: stub.then_some(true),
            ephemeral_id: None,
        }
    }

    fn routed(p: &RecoveryPack, typed: &str) -> Result<Option<(char, String)>> {
        let routes = p.prefixed_escrows();
        Ok(route_code(p, &routes, typed)?.map(|(c, code, _)| (c, code.expose_secret().into())))
    }

    #[test]
    fn authenticator_codes_route_by_shape_or_prefix() {
        let one = pack_of(&["email", "totp"], false);
        assert_eq!(
            routed(&one, "123 456").unwrap(),
            Some(('2', "123456".into()))
        );
        assert_eq!(
            routed(&one, "2123-456").unwrap(),
            Some(('2', "123456".into()))
        );
        assert_eq!(
            routed(&one, "1123456").unwrap(),
            Some(('1', "1123456".into()))
        );
        assert!(routed(&one, "21234567").is_err());
        assert_eq!(routed(&one, " ").unwrap(), None);
        let two = pack_of(&["totp", "email", "totp"], false);
        let e = routed(&two, "123456").unwrap_err().to_string();
        assert!(e.contains("prefixes 1, 3"), "{e}");
        assert_eq!(
            routed(&two, "3654321").unwrap(),
            Some(('3', "654321".into()))
        );
        assert_eq!(
            routed(&two, "1654321").unwrap(),
            Some(('1', "654321".into()))
        );
        let none = pack_of(&["email", "tel"], false);
        let e = routed(&none, "123456").unwrap_err().to_string();
        assert!(e.contains("no authenticator"), "{e}");
        // An ephemeral stand-in has one escrow, of a kind it cannot know.
        let stub = pack_of(&["ephemeral"], true);
        assert_eq!(
            routed(&stub, "123456").unwrap(),
            Some(('1', "123456".into()))
        );
    }

    #[test]
    fn combinations() {
        let mut idx = vec![0, 1];
        let mut seen = vec![idx.clone()];
        while next_combination(&mut idx, 4) {
            seen.push(idx.clone());
        }
        assert_eq!(seen.len(), 6);
    }
}
