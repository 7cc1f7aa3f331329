//! Where the server keeps its state: escrows, pending codes, spent tokens.
//!
//! [`Storage`] is small on purpose, so another backend is easy to add
//! beside `sqlite.rs`; [`SqliteStorage`] is the one we ship (its schema
//! and migrations in `schema.rs`). Everything handed to storage is
//! already sealed or hashed by the protocol layer: storage never sees an
//! escrow in clear, a verification code, or a key.
//!
//! Every operation that must not race (checking a code and spending an
//! attempt, counting a verification and issuing its code, storing a paid
//! escrow and spending its token) is a single call and a single
//! transaction (one disk sync). Every call that changes what the protocol
//! answers or what a limit depends on (escrows, deletions, spent tokens,
//! verification counts, codes set, attempts spent, codes used) is durable
//! before it returns: a power cut right after an answer cannot undo it.

mod open;
#[cfg(feature = "postgres")]
pub mod postgres;
mod schema;
mod sqlite;

#[cfg(feature = "postgres")]
pub use open::postgres_settings;
pub use open::{open_database, Database};
#[cfg(feature = "postgres")]
pub use postgres::PostgresStorage;
pub use schema::SCHEMA_VERSION;
pub use sqlite::SqliteStorage;

/// A storage failure (always answered as an internal error).
#[derive(Debug)]
pub struct StorageError(pub String);

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "storage: {}", self.0)
    }
}

impl std::error::Error for StorageError {}

/// Storage result.
pub type StorageResult<T> = std::result::Result<T, StorageError>;

/// A stored escrow.
#[derive(Clone)]
pub struct EscrowRow {
    /// Unix time it expires.
    pub expires: i64,
    /// The escrow data, sealed under the server's master key.
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for EscrowRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "EscrowRow {{ expires: {}, sealed: {} bytes }}",
            self.expires,
            self.sealed.len()
        )
    }
}

/// What looking an escrow up found.
#[derive(Debug)]
pub enum Lookup {
    /// Live.
    Found(EscrowRow),
    /// Present but past its expiration (it is removed).
    Expired,
    /// Not there.
    Missing,
}

/// The outcome of trying a code against the pending one.
#[derive(Debug, PartialEq, Eq)]
pub enum CodeCheck {
    /// No code was issued (or it was used or deleted).
    NoCode,
    /// The code's time is up (it is removed).
    Expired,
    /// Every attempt was spent earlier; the code is void.
    Void,
    /// It matched: the code is consumed (removed).
    Right,
    /// It did not match; one attempt was spent and `left` remain.
    Wrong {
        /// Attempts left (0: the code is now void).
        left: u32,
    },
}

/// A verification [`Storage::start_verification`] counted: what
/// [`Storage::verification_failed`] needs if its code is not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Started {
    /// Start of the rate-limit window it was counted in.
    pub window: i64,
}

/// What a sweep removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Escrows.
    pub escrows: u64,
    /// Codes.
    pub codes: u64,
    /// Spent-token records.
    pub tokens: u64,
}

/// A payment token to spend with the escrow it pays for
/// ([`Storage::insert_escrow_paid`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Spend {
    /// The keyed hash of what the token proves (never its spelling).
    pub hash: [u8; 32],
    /// Unix time after which the token could not pay any more anyway
    /// (its record may be swept then).
    pub expires: i64,
}

impl std::fmt::Debug for Spend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Spend {{ expires: {} }}", self.expires)
    }
}

/// What [`Storage::insert_escrow_paid`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// The escrow is stored and the token spent.
    Stored,
    /// The token was spent before: nothing changed.
    TokenSpent,
    /// A live escrow has the id: nothing changed (the token is not spent).
    IdTaken,
}

/// Counts for `stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Escrows held (including expired ones not yet swept).
    pub escrows: u64,
    /// Pending codes.
    pub codes: u64,
}

/// The operations the protocol needs.
pub trait Storage: Send + Sync {
    /// Store an escrow under `id` unless a live one has it; returns whether
    /// it was stored. Durable before it returns.
    fn insert_escrow(&self, id: &str, expires: i64, sealed: &[u8], now: i64)
        -> StorageResult<bool>;
    /// Store an escrow paid with a token, and spend the token, in one
    /// transaction: either both happen or neither does. Refused, changing
    /// nothing, when the token was spent before (and its record has not
    /// expired by `now`) or a live escrow has the id. Durable before it
    /// returns. There is no default: spending and storing apart would let
    /// a failed store spend a token, or one token pay twice.
    fn insert_escrow_paid(
        &self,
        id: &str,
        expires: i64,
        sealed: &[u8],
        spend: &Spend,
        now: i64,
    ) -> StorageResult<Inserted>;
    /// Store many escrows at once (bulk import, benchmarks): ids must be
    /// new; rows whose id is taken are skipped. Returns how many were
    /// stored. The default inserts one by one.
    fn insert_escrows(&self, rows: &[(String, i64, Vec<u8>)], now: i64) -> StorageResult<usize> {
        let mut n = 0;
        for (id, expires, sealed) in rows {
            if self.insert_escrow(id, *expires, sealed, now)? {
                n += 1;
            }
        }
        Ok(n)
    }
    /// Look an escrow up.
    fn get_escrow(&self, id: &str, now: i64) -> StorageResult<Lookup>;
    /// Remove an escrow and its code; returns whether it existed.
    fn delete_escrow(&self, id: &str) -> StorageResult<bool>;
    /// Count a verification of `id` in a fixed window of `window` seconds,
    /// before its code is sent. Returns `None`, changing nothing, when
    /// `max` were already counted in the window (or there is no such
    /// escrow). The pending code is left as it is: the new one replaces it
    /// only once delivered ([`Storage::set_code`]), so a code nobody
    /// received can never be guessed at or displace one somebody did.
    fn start_verification(
        &self,
        id: &str,
        now: i64,
        window: i64,
        max: u32,
    ) -> StorageResult<Option<Started>>;
    /// Make `mac` (the keyed hash of a code just delivered) the pending
    /// code of the escrow `id` whose stored data is `sealed` (as read
    /// before the delivery), replacing a code that expires no later: of
    /// two codes delivered at once, the one requested last stays pending,
    /// whichever arrived last. Returns false, storing nothing, if that
    /// escrow is gone (deleted, swept, or replaced by another escrow with
    /// the same id while the code was on its way).
    fn set_code(
        &self,
        id: &str,
        sealed: &[u8],
        mac: &[u8],
        expires: i64,
        attempts: u32,
    ) -> StorageResult<bool>;
    /// Record that the code of a counted verification could not be
    /// delivered. While its window is the current one and fewer than
    /// `forgive` failures were forgiven in it, the verification is
    /// uncounted (returns true); past that, failures count like
    /// deliveries, so an escrow never gets more than `max + forgive`
    /// delivery attempts in a window.
    fn verification_failed(&self, id: &str, started: Started, forgive: u32) -> StorageResult<bool>;
    /// Try `mac` (the keyed hash of a code the user typed) against the
    /// pending code of `id`, compared in constant time, in one
    /// transaction: a match consumes the code, a mismatch spends an attempt.
    fn check_code(&self, id: &str, mac: &[u8], now: i64) -> StorageResult<CodeCheck>;
    /// Remove everything expired.
    fn sweep(&self, now: i64) -> StorageResult<Swept>;
    /// Counts for `stats`.
    fn counts(&self) -> StorageResult<Counts>;
}
