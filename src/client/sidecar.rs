//! The health side file kept beside each pack: `NAME.passcrow.health`
//! (never `*.passcrow`, so neither client lists it as a pack; written
//! atomically with mode 0600; removed by `forget`). Packs themselves stay
//! byte-compatible with python-passcrow.
//!
//! It holds when the pack was protected and last reviewed, and per escrow
//! what `check` needs to verify a server's `status` digest: a seed that
//! derives the challenges and the expected answers to them, computed at
//! protect time from the escrow data as sent.
//!
//! It does **not** keep the escrowed blobs themselves, although those are
//! encrypted: they are encrypted under the recovery keys, which the pack
//! holds, so a thief of the pack and this file would read every share and
//! recover the secret without a single code. An answer is an HMAC of the
//! blob under a random challenge: it tells nothing about the share. Each
//! challenge is used once (a server that cached an answer cannot reuse
//! it); after [`CHALLENGES`] checks they are reused at random, which a
//! cheating server can meet only for the ones it saw, and `renew` makes
//! fresh ones.

use std::path::PathBuf;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::crypto;
use crate::pack::{write_atomic, PackDir};
use crate::proto::health::status_digest;
use crate::{Error, Result};

/// Suffix of the side file, after the pack's own file name.
pub const SIDE_FILE_SUFFIX: &str = ".health";
/// Challenges prepared per escrow (a weekly check for two years).
pub const CHALLENGES: u32 = 128;
/// Bytes of each expected answer kept (the digest's first 16).
const ANSWER_BYTES: usize = 16;
/// Largest side file read.
const MAX_SIDE_FILE_BYTES: u64 = 1 << 21;

/// The side file of one pack.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SideFile {
    /// Format version (1).
    #[serde(rename = "passcrow-health")]
    pub version: u32,
    /// Unix time of protect (or renew).
    #[serde(rename = "protected-ts")]
    pub protected_ts: i64,
    /// Unix time the user last reviewed the pack (recovered with it, or
    /// the app said so).
    #[serde(
        rename = "reviewed-ts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub reviewed_ts: Option<i64>,
    /// One entry per escrow of the pack that we made.
    pub escrows: Vec<SideEscrow>,
}

/// What checking one escrow needs.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SideEscrow {
    /// The escrow's server, as in the pack.
    pub server: String,
    /// Its id, as in the pack.
    #[serde(rename = "escrow-data-id")]
    pub escrow_data_id: String,
    /// Base64 of 32 random bytes the challenges are derived from.
    pub seed: String,
    /// Base64 of the expected answers, [`ANSWER_BYTES`] each, in order.
    pub answers: String,
    /// The next challenge not yet sent.
    pub next: u32,
}

/// One challenge to send and the answer it must get.
pub(crate) struct Challenge {
    /// The challenge bytes.
    pub bytes: [u8; 32],
    /// The first bytes of the digest a server holding the data answers.
    pub expected: Vec<u8>,
    /// False when every prepared challenge was used and this one is sent again.
    pub fresh: bool,
}

/// Challenge `i` of `seed`.
fn challenge(seed: &[u8], i: u32) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(seed).unwrap_or_else(|_| unreachable!());
    m.update(b"passcrow status challenge v1\0");
    m.update(&i.to_be_bytes());
    m.finalize().into_bytes().into()
}

impl SideEscrow {
    /// The entry for an escrow just made of the escrow-data `blob` as sent.
    pub fn new(server: &str, escrow_data_id: &str, blob: &str) -> Result<SideEscrow> {
        let raw = crypto::b64decode(blob)
            .map_err(|_| Error::protocol("the escrow data sent is not base64"))?;
        let mut seed = [0u8; 32];
        crypto::random_bytes(&mut seed);
        let mut answers = Vec::with_capacity(CHALLENGES as usize * ANSWER_BYTES);
        for i in 0..CHALLENGES {
            let d = status_digest(&challenge(&seed, i), &raw);
            answers.extend_from_slice(&d[..ANSWER_BYTES]);
        }
        Ok(SideEscrow {
            server: server.to_string(),
            escrow_data_id: escrow_data_id.to_string(),
            seed: crypto::b64encode(&seed),
            answers: crypto::b64encode(&answers),
            next: 0,
        })
    }

    /// Take the next challenge (advancing `next`); once all were used, one
    /// of them at random. `None` when the entry is damaged.
    pub fn take(&mut self) -> Option<Challenge> {
        let seed = crypto::b64decode(&self.seed).ok()?;
        let answers = crypto::b64decode(&self.answers).ok()?;
        let count = (answers.len() / ANSWER_BYTES) as u32;
        if seed.len() != 32 || count == 0 {
            return None;
        }
        let (i, fresh) = if self.next < count {
            self.next += 1;
            (self.next - 1, true)
        } else {
            use rand::Rng;
            (rand::rngs::OsRng.gen_range(0..count), false)
        };
        let at = i as usize * ANSWER_BYTES;
        Some(Challenge {
            bytes: challenge(&seed, i),
            expected: answers[at..at + ANSWER_BYTES].to_vec(),
            fresh,
        })
    }
}

impl SideFile {
    /// A new side file for a pack protected at `now`.
    pub fn new(now: i64, escrows: Vec<SideEscrow>) -> SideFile {
        SideFile {
            version: 1,
            protected_ts: now,
            reviewed_ts: None,
            escrows,
        }
    }

    /// The entry for the escrow `id` on `server`.
    pub fn entry_mut(&mut self, server: &str, id: &str) -> Option<&mut SideEscrow> {
        self.escrows
            .iter_mut()
            .find(|e| e.server == server && e.escrow_data_id == id)
    }

    /// When the pack was last protected or reviewed.
    pub fn last_review(&self) -> i64 {
        self.reviewed_ts
            .unwrap_or(self.protected_ts)
            .max(self.protected_ts)
    }
}

/// Where the side file of the pack `name` lives.
pub(crate) fn path(packs: &PackDir, name: &str) -> Result<PathBuf> {
    let mut p = packs.path_for(name)?.into_os_string();
    p.push(SIDE_FILE_SUFFIX);
    Ok(PathBuf::from(p))
}

/// The side file of the pack `name`, if there is one.
pub(crate) fn load(packs: &PackDir, name: &str) -> Result<Option<SideFile>> {
    use std::io::Read;
    let p = path(packs, name)?;
    let f = match std::fs::File::open(&p) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("opening {}", p.display()), e)),
    };
    let mut buf = Vec::new();
    f.take(MAX_SIDE_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(format!("reading {}", p.display()), e))?;
    if buf.len() as u64 > MAX_SIDE_FILE_BYTES {
        return Err(Error::protocol(format!("{} is too large", p.display())));
    }
    let side: SideFile = crate::proto::parse(&buf, &format!("side file {}", p.display()))?;
    if side.version != 1 {
        return Err(Error::protocol(format!(
            "side file {}: unknown version {}",
            p.display(),
            side.version
        )));
    }
    Ok(Some(side))
}

/// Write the side file of the pack `name` (atomically, mode 0600).
pub(crate) fn save(packs: &PackDir, name: &str, side: &SideFile) -> Result<()> {
    let json = serde_json::to_vec(side).map_err(|e| Error::protocol(e.to_string()))?;
    write_atomic(&path(packs, name)?, &json)
}

/// Remove the side file of the pack `name`; none is not an error.
pub(crate) fn remove(packs: &PackDir, name: &str) -> Result<()> {
    let p = path(packs, name)?;
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("removing {}", p.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_match_a_digest_of_the_blob_and_challenges_are_used_once() {
        let blob = crypto::b64encode(b"some escrowed bytes, encrypted");
        let mut e = SideEscrow::new("s", "id", &blob).unwrap();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..CHALLENGES {
            let c = e.take().unwrap();
            assert!(c.fresh);
            assert!(seen.insert(c.bytes));
            let d = status_digest(&c.bytes, b"some escrowed bytes, encrypted");
            assert_eq!(&d[..ANSWER_BYTES], &c.expected[..]);
            let other = status_digest(&c.bytes, b"some escrowed bytes, encrypteD");
            assert_ne!(&other[..ANSWER_BYTES], &c.expected[..]);
        }
        // Used up: reused at random, and said so.
        let c = e.take().unwrap();
        assert!(!c.fresh && seen.contains(&c.bytes));
    }

    #[test]
    fn the_side_file_is_private_and_not_a_pack() {
        let d = tempfile::tempdir().unwrap();
        let packs = PackDir::new(d.path());
        let side = SideFile::new(5, vec![SideEscrow::new("s", "i", "AAAA").unwrap()]);
        save(&packs, "wallet", &side).unwrap();
        let p = path(&packs, "wallet").unwrap();
        assert!(p.ends_with("wallet.passcrow.health"));
        assert!(!crate::util::files::readable_by_others(&p));
        assert!(packs.list().unwrap().is_empty());
        assert_eq!(load(&packs, "wallet").unwrap().unwrap().protected_ts, 5);
        remove(&packs, "wallet").unwrap();
        assert!(load(&packs, "wallet").unwrap().is_none());
        remove(&packs, "wallet").unwrap();
    }
}
