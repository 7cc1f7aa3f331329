//! The recovery pack (one JSON file per protected secret) and the directory
//! that stores packs.
//!
//! Files are python-passcrow 0.0.7's: `DATA_DIR/NAME.passcrow`, written as
//! `json.dumps(indent=2)` with the same keys in the same order, so each side
//! reads the other's packs. Unlike the reference we write atomically (temp
//! file, fsync, rename, fsync of the directory) and with mode 0600.

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::crypto::{self, Key32, SecretBytes, SecretString};
use crate::proto::{self, EscrowResponse};
use crate::{Error, Result};

/// File name suffix of packs.
pub const PACK_SUFFIX: &str = ".passcrow";

/// Verification code prefixes, one per escrow, in escrow order. Digits
/// first so codes are usually numeric; never `O`, `L` or `I`.
pub const VERIFICATION_PREFIXES: &str = "1234567890ABCDEFGHJKMNPQRSTUVWXYZ";

/// The most escrows one pack can route codes to.
pub const MAX_ESCROWS: usize = 33;

/// Largest pack file we read (a pack with 33 escrows is ~15 KB).
const MAX_PACK_BYTES: u64 = 1 << 20;

/// One share placed with one server.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscrowRecord {
    /// Identity kind the code goes to (`email`, `tel`, ..., or `ephemeral`).
    pub kind: String,
    /// The server, as written in the policy (`host[:port]` or `http://host:port`).
    pub server: String,
    /// Base64 key that opens the escrowed data (for an ephemeral escrow in a
    /// pack written by `protect -e`, the reference stores the user key here).
    #[serde(rename = "recovery-key")]
    pub recovery_key: SecretString,
    /// The server's answer.
    pub response: EscrowResponse,
}

impl fmt::Debug for EscrowRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EscrowRecord")
            .field("kind", &self.kind)
            .field("server", &self.server)
            .field("recovery_key", &"[redacted]")
            .field("response", &self.response)
            .finish()
    }
}

/// A recovery pack.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryPack {
    /// The secret's name.
    pub name: String,
    /// Unix time of creation.
    #[serde(
        rename = "created-ts",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub created_ts: Option<i64>,
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub description: Option<String>,
    /// The secret, sealed under the pack key: a blob of `{"data": base64}`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub secret: Option<String>,
    /// How many escrowed shares recovery needs (the user's n).
    #[serde(rename = "min-shares")]
    pub min_shares: u32,
    /// Shares kept locally (padding the threshold up to 3 for small n).
    #[serde(default)]
    pub shares: Vec<SecretString>,
    /// The escrows, in prefix order (an ephemeral escrow is last).
    pub escrow: Vec<EscrowRecord>,
    /// Set on a pack that stands for an ephemeral escrow (`SERVER:KEY`).
    #[serde(
        rename = "is-ephemeral",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub is_ephemeral: Option<bool>,
    /// `SERVER:USER_KEY` of this pack's ephemeral copy.
    #[serde(
        rename = "ephemeral-id",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub ephemeral_id: Option<SecretString>,
}

impl fmt::Debug for RecoveryPack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The stand-in for an ephemeral recovery id is named SERVER:USER_KEY.
        let name = if self.is_ephemeral_stub() {
            "[redacted]"
        } else {
            self.name.as_str()
        };
        f.debug_struct("RecoveryPack")
            .field("name", &name)
            .field("created_ts", &self.created_ts)
            .field("description", &self.description)
            .field("min_shares", &self.min_shares)
            .field("local_shares", &self.shares.len())
            .field("escrow", &self.escrow)
            .field("is_ephemeral", &self.is_ephemeral)
            .field("has_ephemeral_id", &self.ephemeral_id.is_some())
            .finish()
    }
}

/// The plaintext inside a pack's `secret` blob.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretBlob {
    data: SecretString,
}

impl RecoveryPack {
    /// Parse a pack from JSON (any layout), and check it makes sense.
    pub fn from_json(bytes: &[u8], what: &str) -> Result<RecoveryPack> {
        let p: RecoveryPack = proto::parse(bytes, what)?;
        p.validate(what)?;
        Ok(p)
    }

    /// Check the pack's fields agree with each other.
    pub fn validate(&self, what: &str) -> Result<()> {
        let bad = |m: String| Error::protocol(format!("{what}: {m}"));
        if self.escrow.is_empty() {
            return Err(bad("no escrows".into()));
        }
        if self.min_shares == 0 {
            return Err(bad("min-shares is 0".into()));
        }
        let routed = self.prefixed_escrows().len();
        if routed > MAX_ESCROWS {
            return Err(bad(format!("{routed} escrows, at most {MAX_ESCROWS}")));
        }
        if self.min_shares as usize > routed.max(1) {
            return Err(bad(format!(
                "min-shares {} exceeds the {routed} escrows",
                self.min_shares
            )));
        }
        if !self.is_ephemeral_stub() && self.secret.is_none() {
            return Err(bad("no secret".into()));
        }
        Ok(())
    }

    /// The pack as python-passcrow writes it.
    pub fn to_json(&self) -> String {
        proto::to_reference_json(self)
    }

    /// True for the stand-in made from `SERVER:KEY` (ephemeral recovery).
    pub fn is_ephemeral_stub(&self) -> bool {
        self.is_ephemeral == Some(true)
    }

    /// Escrows that codes route to, with their prefixes. A pack with an
    /// ephemeral copy keeps that copy last and does not route to it.
    pub fn prefixed_escrows(&self) -> Vec<(char, &EscrowRecord)> {
        let routed = if self.ephemeral_id.is_some() && !self.escrow.is_empty() {
            &self.escrow[..self.escrow.len() - 1]
        } else {
            &self.escrow[..]
        };
        VERIFICATION_PREFIXES.chars().zip(routed.iter()).collect()
    }

    /// When the first escrow expires (unix time).
    pub fn expires_ts(&self) -> i64 {
        self.escrow
            .iter()
            .map(|e| e.response.expiration)
            .min()
            .unwrap_or(0)
    }

    /// Seal `secret` under `key` as the pack's secret blob.
    pub fn seal_secret(key: &Key32, secret: &[u8]) -> Result<String> {
        let blob = SecretBlob {
            data: SecretString::new(crypto::b64encode(secret)),
        };
        let json = SecretBytes::new(proto::to_reference_json(&blob).into_bytes());
        crypto::seal(key, json.expose_secret())
    }

    /// Open the pack's secret with the pack key.
    pub fn open_secret(&self, key: &Key32) -> Result<SecretBytes> {
        let blob = self
            .secret
            .as_deref()
            .ok_or_else(|| Error::protocol("the pack has no secret"))?;
        let json = crypto::open(key, blob, "the pack's secret")?;
        let sb: SecretBlob = proto::parse(json.expose_secret(), "the pack's secret")?;
        let raw = crypto::b64decode(sb.data.expose_secret())
            .map_err(|_| Error::protocol("the pack's secret data is not base64"))?;
        Ok(SecretBytes::new(raw))
    }
}

/// File name for a pack name, as the reference makes it: the name itself
/// when it is ASCII without `\`, `/`, `:` and does not start with `.`;
/// otherwise `_` + base32 of its UTF-8.
pub fn pack_file_name(name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(Error::bad_input("a pack name cannot be empty"));
    }
    let plain = name.is_ascii() && !name.contains(['\\', '/', ':', '\0']) && !name.starts_with('.');
    let stem = if plain {
        name.to_string()
    } else {
        format!("_{}", data_encoding::BASE32.encode(name.as_bytes()))
    };
    let file = format!("{stem}{PACK_SUFFIX}");
    if file.len() > 255 {
        return Err(Error::bad_input(format!(
            "the pack name is too long for a file name ({} bytes)",
            name.len()
        )));
    }
    Ok(file)
}

/// The pack name a file name stands for, if it is a pack file.
pub fn name_from_file(file: &str) -> Option<String> {
    let stem = file.strip_suffix(PACK_SUFFIX)?;
    if stem.is_empty() || stem.starts_with('.') {
        return None;
    }
    if let Some(b32) = stem.strip_prefix('_') {
        if let Ok(raw) = data_encoding::BASE32.decode(b32.as_bytes()) {
            if let Ok(s) = String::from_utf8(raw) {
                return Some(s);
            }
        }
    }
    Some(stem.to_string())
}

/// Write `data` to `path` atomically with mode 0600
/// ([`crate::util::files::write_atomic`]), naming the path in the error.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    crate::util::files::write_atomic(path, data)
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// The directory of recovery packs.
#[derive(Clone, Debug)]
pub struct PackDir {
    dir: PathBuf,
}

impl PackDir {
    /// Use `dir` (it must exist).
    pub fn new(dir: impl Into<PathBuf>) -> PackDir {
        PackDir { dir: dir.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Where the pack called `name` lives.
    pub fn path_for(&self, name: &str) -> Result<PathBuf> {
        Ok(self.dir.join(pack_file_name(name)?))
    }

    /// True when a pack called `name` exists.
    pub fn exists(&self, name: &str) -> bool {
        self.path_for(name).map(|p| p.exists()).unwrap_or(false)
    }

    /// Load the pack called `name`.
    pub fn load(&self, name: &str) -> Result<RecoveryPack> {
        let path = self.path_for(name)?;
        Self::load_path(&path)
    }

    /// Load a pack file.
    pub fn load_path(path: &Path) -> Result<RecoveryPack> {
        let f = fs::File::open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NotFound(format!("no recovery pack at {}", path.display()))
            } else {
                Error::io(format!("opening {}", path.display()), e)
            }
        })?;
        let mut buf = Vec::new();
        f.take(MAX_PACK_BYTES + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        if buf.len() as u64 > MAX_PACK_BYTES {
            return Err(Error::protocol(format!(
                "{} is too large to be a recovery pack",
                path.display()
            )));
        }
        let buf = SecretBytes::new(buf);
        RecoveryPack::from_json(
            buf.expose_secret(),
            &format!("recovery pack {}", path.display()),
        )
    }

    /// Save `pack` under `name` (atomically, mode 0600), replacing any
    /// earlier pack of that name.
    pub fn save(&self, name: &str, pack: &RecoveryPack) -> Result<PathBuf> {
        let path = self.path_for(name)?;
        let json = SecretBytes::new(pack.to_json().into_bytes());
        write_atomic(&path, json.expose_secret())?;
        Ok(path)
    }

    /// Remove the pack called `name`.
    pub fn remove(&self, name: &str) -> Result<()> {
        let path = self.path_for(name)?;
        fs::remove_file(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NotFound(format!("no recovery pack at {}", path.display()))
            } else {
                Error::io(format!("removing {}", path.display()), e)
            }
        })
    }

    /// Every pack file in the directory, sorted by file name, each loaded
    /// (a pack that fails to load is returned with its error).
    pub fn list(&self) -> Result<Vec<(String, Result<RecoveryPack>)>> {
        let rd = fs::read_dir(&self.dir)
            .map_err(|e| Error::io(format!("listing {}", self.dir.display()), e))?;
        let mut files: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|f| f.ends_with(PACK_SUFFIX) && !f.starts_with('.'))
            .collect();
        files.sort();
        Ok(files
            .into_iter()
            .filter_map(|f| {
                let name = name_from_file(&f)?;
                let pack = Self::load_path(&self.dir.join(&f));
                Some((name, pack))
            })
            .collect())
    }
}

/// Ephemeral escrow: the pack itself escrowed under keys derived from a
/// short user key (`AbCd-23Ef-GhJk-MnPq`) with scrypt N=2^20.
pub mod ephemeral {
    use super::*;
    use crate::crypto::kdf;

    /// Largest decompressed ephemeral pack we accept.
    const MAX_INFLATED: u64 = 1 << 20;

    /// Make a fresh user key: 16 characters of base64 without `/ + 1 l O 0 I`,
    /// in groups of four.
    pub fn new_user_key() -> SecretString {
        let mut chars = String::new();
        while chars.len() < 16 {
            let k = crypto::random_key();
            let b = crypto::b64encode(k.expose_secret());
            chars.extend(
                b.chars()
                    .filter(|c| c.is_ascii_alphanumeric() && !"1lO0I".contains(*c))
                    .take(16 - chars.len()),
            );
        }
        let s = format!(
            "{}-{}-{}-{}",
            &chars[0..4],
            &chars[4..8],
            &chars[8..12],
            &chars[12..16]
        );
        chars.clear();
        SecretString::new(s)
    }

    /// Split `SERVER:USER_KEY` at its last colon.
    pub fn split_id(id: &str) -> Result<(String, SecretString)> {
        let id = id.trim();
        match id.rsplit_once(':') {
            Some((server, key)) if !server.is_empty() && !key.trim().is_empty() => {
                Ok((server.to_string(), SecretString::from(key.trim())))
            }
            _ => Err(Error::bad_input(
                "an ephemeral recovery id is written SERVER:KEY",
            )),
        }
    }

    /// The escrow id: lowercase hex of scrypt(key, "Escrow ID", 16 bytes).
    pub fn escrow_id(user_key: &str) -> Result<String> {
        let raw = kdf::scrypt(
            user_key.as_bytes(),
            b"Escrow ID",
            kdf::EPHEMERAL_LOG_N,
            8,
            1,
            16,
        )?;
        Ok(data_encoding::HEXLOWER.encode(raw.expose_secret()))
    }

    /// The escrow key: scrypt(key, "Escrow Key", 32 bytes).
    pub fn escrow_key(user_key: &str) -> Result<Key32> {
        kdf::derive_key_2_20(user_key.as_bytes(), b"Escrow Key")
    }

    /// The key that seals the escrowed pack: scrypt(key, "", 32 bytes).
    pub fn pack_key(user_key: &str) -> Result<Key32> {
        kdf::derive_key_2_20(user_key.as_bytes(), b"")
    }

    /// How the ephemeral mode's scrypt derivations (1 GiB each) share the
    /// machine.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub enum KdfConcurrency {
        /// Two at a time (2 GiB at the peak) when a second core and the
        /// memory for both are there; otherwise, quietly, one at a time.
        #[default]
        TwoAtATime,
        /// One at a time (1 GiB at the peak), for memory-starved devices.
        OneAtATime,
    }

    /// What the first step of an ephemeral recovery needs, derived from the
    /// user key: the escrow id and the escrow key (two derivations, run
    /// as `conc` allows).
    pub fn lookup_keys(user_key: &str, conc: KdfConcurrency) -> Result<(String, Key32)> {
        kdf::run_pair(
            conc == KdfConcurrency::TwoAtATime,
            kdf::scrypt_memory(kdf::EPHEMERAL_LOG_N, 8),
            || escrow_id(user_key),
            || escrow_key(user_key),
        )
    }

    /// All three keys of an ephemeral escrow: (escrow id, escrow key, pack
    /// key). With [`KdfConcurrency::TwoAtATime`] the id and the escrow key
    /// are derived together, then the pack key (the memory stays within
    /// two derivations' worth).
    pub fn all_keys(user_key: &str, conc: KdfConcurrency) -> Result<(String, Key32, Key32)> {
        let (id, ekey) = lookup_keys(user_key, conc)?;
        Ok((id, ekey, pack_key(user_key)?))
    }

    /// Seal a pack for ephemeral escrow: JSON, zlib level 9, blob.
    pub fn seal_pack(pack: &RecoveryPack, key: &Key32) -> Result<String> {
        use flate2::write::ZlibEncoder;
        let json = SecretBytes::new(pack.to_json().into_bytes());
        let mut enc = ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(json.expose_secret())
            .map_err(|e| Error::io("compressing the pack", e))?;
        let z = SecretBytes::new(
            enc.finish()
                .map_err(|e| Error::io("compressing the pack", e))?,
        );
        crypto::seal(key, z.expose_secret())
    }

    /// Open an ephemerally escrowed pack.
    pub fn open_pack(blob: &str, key: &Key32) -> Result<RecoveryPack> {
        use flate2::read::ZlibDecoder;
        let z = crypto::open(key, blob, "the ephemeral pack")?;
        let mut json = Vec::new();
        ZlibDecoder::new(z.expose_secret())
            .take(MAX_INFLATED + 1)
            .read_to_end(&mut json)
            .map_err(|_| Error::protocol("the ephemeral pack is not valid zlib data"))?;
        let json = SecretBytes::new(json);
        if json.len() as u64 > MAX_INFLATED {
            return Err(Error::protocol("the ephemeral pack is too large"));
        }
        RecoveryPack::from_json(json.expose_secret(), "the ephemeral pack")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ephemeral_stub_debug_hides_the_user_key() {
        let stub = RecoveryPack::from_json(
            br#"{"name": "srv.example:AbCd-EfGh-JkMn-PqRs", "shares": [],
                 "escrow": [{"kind": "ephemeral", "server": "srv.example",
                   "recovery-key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                   "response": {"passcrow-escrow-response": "1.0", "expiration": 0,
                                "escrow-data-id": "0123abcd"}}],
                 "is-ephemeral": true, "min-shares": 1}"#,
            "stub",
        )
        .unwrap();
        assert!(stub.is_ephemeral_stub());
        let d = format!("{stub:?}");
        assert!(!d.contains("AbCd"), "{d}");
        assert!(d.contains("[redacted]"), "{d}");
    }

    #[test]
    fn file_names_follow_the_reference() {
        assert_eq!(
            pack_file_name("vector pack").unwrap(),
            "vector pack.passcrow"
        );
        assert_eq!(pack_file_name("a/b").unwrap(), "_MEXWE===.passcrow");
        assert_eq!(
            pack_file_name(".hidden").unwrap(),
            "_FZUGSZDEMVXA====.passcrow"
        );
        assert_eq!(pack_file_name("Æ").unwrap(), "_YODA====.passcrow");
        assert!(pack_file_name("").is_err());
        assert!(pack_file_name(&"x".repeat(300)).is_err());
        for n in ["vector pack", "a/b", "srv:KEY", "Æþ", ".x"] {
            assert_eq!(name_from_file(&pack_file_name(n).unwrap()).unwrap(), n);
        }
    }

    #[test]
    fn user_keys_look_right() {
        for _ in 0..20 {
            let k = ephemeral::new_user_key();
            let s = k.expose_secret();
            assert_eq!(s.len(), 19);
            assert!(!s.contains(['/', '+', '1', 'l', 'O', '0', 'I']));
            assert_eq!(s.matches('-').count(), 3);
        }
    }

    #[test]
    fn atomic_write_is_0600() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.passcrow");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let left: Vec<_> = fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temp files left behind");
    }

    proptest::proptest! {
        #[test]
        fn pack_parser_never_panics(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = RecoveryPack::from_json(&b, "t");
        }

        #[test]
        fn pack_file_name_never_panics(s in ".{0,100}") {
            let _ = pack_file_name(&s);
        }
    }
}
