//! Where the server keeps its state: escrows, pending codes, spent tokens.
//!
//! [`Storage`] is small on purpose, so another backend is easy to add
//! beside `sqlite.rs`; [`SqliteStorage`] is the one we ship (its schema
//! and migrations in `schema.rs`). Everything handed to storage is
//! already sealed or hashed by the protocol layer: storage never sees an
//! escrow in clear, a verification code, a key, or an escrow id (escrows
//! and codes are stored under a [`StoredId`], a keyed hash of the id).
//! The one exception is the migration of a database from before schema
//! 3, which held clear ids: [`SqliteStorage::open_migrating`] reads them
//! once to re-key them through a [`Rekey`] the server hands it.
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
#[cfg(feature = "testing")]
pub(crate) use schema::{write_old_database, OldCode, OldEscrow};
pub use sqlite::SqliteStorage;

/// The id an escrow (and its pending code) is stored under: a keyed hash
/// (HMAC-SHA256, under a key derived from the master key) of its clear
/// storage key, so the database, its WAL and its backups can neither name
/// an escrow nor be searched for one without the master key. Debug and
/// Display show only the first 8 hex digits of the hash (what logs carry).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StoredId([u8; 32]);

impl StoredId {
    /// A stored id from its 32 bytes (as the server derives them, or as
    /// read back from storage).
    pub fn from_bytes(b: [u8; 32]) -> StoredId {
        StoredId(b)
    }

    /// Its 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 8 hex digits of the hash: enough to tell escrows apart
    /// in logs; it names no escrow (the clear id cannot be found from it
    /// without the master key).
    pub fn short(&self) -> String {
        self.0[..4].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for StoredId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoredId({}…)", self.short())
    }
}

impl std::fmt::Display for StoredId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.short())
    }
}

/// What migrating a database that held clear escrow ids (schema 1 or 2)
/// needs from the server: the stored id of a clear storage key, and the
/// escrow re-sealed for it. Given to [`SqliteStorage::open_migrating`].
pub trait Rekey {
    /// The stored id of the clear storage key `key` (lower-case hex).
    fn stored_id(&self, key: &str) -> StoredId;
    /// `sealed` (sealed in format 1 under the clear key `key`) opened and
    /// sealed again in the current format under `id`; `Err` says why not
    /// (naming no secret).
    fn reseal(&self, key: &str, id: &StoredId, sealed: &[u8]) -> Result<Vec<u8>, String>;
}

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
    /// Unix time it was stored (0: before schema 4 recorded it, i.e. old).
    pub created: i64,
    /// The escrow data, sealed under the server's master key.
    pub sealed: Vec<u8>,
    /// Frozen for good: too many wrong codes were tried over its life. No
    /// code is sent for it or compared any more (its owner re-protects).
    pub frozen: bool,
    /// Its wrong guesses so far.
    pub guesses: Guesses,
    /// Its release delay (schema 8): 0 when no release is pending, the
    /// unix time a pending release is due, or [`RELEASE_STOPPED`] once its
    /// owner stopped one (it is then never released).
    pub release_due: i64,
}

/// [`EscrowRow::release_due`] of an escrow whose pending release its
/// owner stopped: it is never released.
pub const RELEASE_STOPPED: i64 = -1;

/// What [`Storage::cancel_release`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseCancel {
    /// The release that was due at `due` is stopped for good.
    Stopped {
        /// When it was due.
        due: i64,
    },
    /// It was stopped before.
    Already,
    /// Its time had come (`due` is past): too late to stop it.
    TooLate {
        /// When it was due.
        due: i64,
    },
    /// No release was ever started with this cancel token.
    Unknown,
}

/// The wrong guesses counted for one escrow (see [`GuessLimits`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Guesses {
    /// Start (unix time) of the current guessing window, 0 before the
    /// first wrong guess.
    pub window: i64,
    /// Wrong guesses in that window.
    pub in_window: u32,
    /// Wrong guesses over the escrow's whole life.
    pub total: u32,
}

impl Guesses {
    /// While the window of `limits` that started at `self.window` is
    /// still open at `now` and has had its `per_window` wrong guesses: when
    /// it ends (no code is compared before then).
    pub fn paused_until(&self, limits: &GuessLimits, now: i64) -> Option<i64> {
        let ends = self.window.saturating_add(limits.window);
        (ends > now && self.in_window >= limits.per_window).then_some(ends)
    }
}

/// How many wrong codes an escrow may take: at most `per_window` in a
/// fixed window of `window` seconds (opened by the first wrong guess after
/// the last window ended), and `lifetime` over its whole life, after which
/// it is frozen for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuessLimits {
    /// Window length in seconds.
    pub window: i64,
    /// Wrong guesses allowed per window.
    pub per_window: u32,
    /// Wrong guesses allowed over the escrow's life.
    pub lifetime: u32,
}

/// What an escrow may still take after a wrong guess.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuessesLeft {
    /// Wrong guesses left in the current window (0: no code is compared
    /// until `window_ends`).
    pub in_window: u32,
    /// Wrong guesses left over the escrow's life (0: it is now frozen).
    pub lifetime: u32,
    /// When the current window ends.
    pub window_ends: i64,
}

/// Caps on what escrow requests may fill, checked in the transaction that
/// stores the escrow ([`Storage::insert_escrow_capped`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// Escrows held at most (expired ones not yet swept included).
    pub max_escrows: u64,
    /// Free escrows stored per UTC day at most.
    pub max_free_per_day: u32,
}

impl std::fmt::Debug for EscrowRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "EscrowRow {{ expires: {}, created: {}, sealed: {} bytes, frozen: {}, guesses: {:?}, release_due: {} }}",
            self.expires,
            self.created,
            self.sealed.len(),
            self.frozen,
            self.guesses,
            self.release_due
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
    /// It did not match; one attempt of the code, one wrong guess of the
    /// window and one of the escrow's life were spent.
    Wrong {
        /// Attempts left on this code (0: the code is now void).
        left: u32,
        /// Wrong guesses the escrow may still take (lifetime 0: it is now
        /// frozen and its code void).
        guesses: GuessesLeft,
    },
    /// The escrow is frozen: nothing was compared, nothing changed.
    Frozen,
    /// The window's wrong guesses are spent: nothing was compared, nothing
    /// changed, until `until`.
    Paused {
        /// When the window ends (unix time).
        until: i64,
    },
}

/// What a guess is compared with in a code check: the keyed hash of a
/// typed code (against the pending code's), or the TOTP step it matched
/// (against the last one accepted).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Probe<'a> {
    /// [`Storage::check_code`]'s keyed hash.
    Mac(&'a [u8]),
    /// [`Storage::check_totp`]'s step.
    Step(Option<i64>),
}

impl Probe<'_> {
    /// Whether the guess is right, given the pending code's keyed hash
    /// and the last TOTP step accepted (-1: none yet).
    pub(crate) fn matches(&self, mac: &[u8], last_step: i64) -> bool {
        match self {
            Probe::Mac(given) => crate::crypto::ct_eq(mac, given),
            Probe::Step(s) => s.is_some_and(|s| s > last_step),
        }
    }

    /// The step to record when it is right.
    pub(crate) fn step(&self) -> Option<i64> {
        match self {
            Probe::Mac(_) => None,
            Probe::Step(s) => *s,
        }
    }
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
    /// [`Caps::max_escrows`] are held: nothing changed (no token spent).
    Full,
    /// [`Caps::max_free_per_day`] free escrows were stored today (UTC):
    /// nothing changed.
    FreeCapReached,
}

/// Counts for `stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Escrows held (including expired ones not yet swept).
    pub escrows: u64,
    /// Pending codes.
    pub codes: u64,
}

// ---- Delivery budgets (schema 4) ----

/// One budget a message is counted against: at most `limit` messages in a
/// window of `window` seconds (starting at the first message counted in
/// it), plus `reserve` more for charges that may use the reserve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetLimit {
    /// What is counted: `rcpt:HEX` (a recipient's keyed hash) or
    /// `kind:NAME` (server-wide, per kind); never an address.
    pub scope: String,
    /// Window length in seconds.
    pub window: i64,
    /// Messages in a window.
    pub limit: u32,
    /// Extra messages in a window, for charges with `reserve_ok`.
    pub reserve: u32,
    /// Counted by the messages to every recipient (the server-wide
    /// `kind:` budgets), so one row every charge of its kind locks.
    /// SQLite has one writer and no use for it; PostgreSQL counts these
    /// in a short transaction of their own, so that concurrent charges do
    /// not take turns on the row for a whole commit's flush
    /// (`postgres/budget.rs`).
    pub shared: bool,
}

/// A message to count ([`Storage::charge_delivery`]).
#[derive(Clone, Debug)]
pub struct Charge {
    /// The recipient's keyed hash (checked against the suppression list).
    pub recipient: [u8; 16],
    /// Every budget it is counted against.
    pub limits: Vec<BudgetLimit>,
    /// May draw on the reserves (an old escrow).
    pub reserve_ok: bool,
    /// Counted even when over every budget (alerts).
    pub force: bool,
}

/// One count [`Storage::charge_delivery`] made, for a refund.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counted {
    /// The budget's scope.
    pub scope: String,
    /// Its window length.
    pub window: i64,
    /// The start of the window it was counted in.
    pub start: i64,
    /// Counted in the reserve (not the budget).
    pub reserve: bool,
    /// Messages counted in the budget's window (reserve aside) after this one.
    pub used: u32,
}

/// What [`Storage::charge_delivery`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Charged {
    /// Counted against every budget, in order.
    Counted(Vec<Counted>),
    /// The recipient opted out: nothing counted.
    Suppressed,
    /// The budget of this index in `limits` is spent: nothing counted.
    Over(usize),
}

/// What [`Storage::charge_and_start_verification`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerificationCharge {
    /// The code's message was refused (`Suppressed` or `Over`, as
    /// [`Storage::charge_delivery`] refuses): nothing counted.
    Refused(Charged),
    /// The escrow's window is full (or there is no such escrow, or it is
    /// frozen): nothing counted, the message neither.
    WindowFull,
    /// The message counted against every budget (in order), and the
    /// verification in the escrow's window.
    Started(Vec<Counted>, Started),
}

/// The operations the protocol needs.
pub trait Storage: Send + Sync {
    /// Store an escrow under `id` unless a live one has it; returns whether
    /// it was stored. Durable before it returns.
    fn insert_escrow(
        &self,
        id: &StoredId,
        expires: i64,
        sealed: &[u8],
        now: i64,
    ) -> StorageResult<bool>;
    /// Store an escrow paid with a token, and spend the token, in one
    /// transaction: either both happen or neither does. Refused, changing
    /// nothing, when the token was spent before (and its record has not
    /// expired by `now`) or a live escrow has the id. Durable before it
    /// returns. There is no default: spending and storing apart would let
    /// a failed store spend a token, or one token pay twice.
    fn insert_escrow_paid(
        &self,
        id: &StoredId,
        expires: i64,
        sealed: &[u8],
        spend: &Spend,
        now: i64,
    ) -> StorageResult<Inserted>;
    /// Store an escrow as an escrow request does: free (`spend` None) or
    /// paid with a token, within `caps`, in one transaction. Refused,
    /// changing nothing (no token spent, no count), when
    /// [`Caps::max_escrows`] are held ([`Inserted::Full`]), or for a free
    /// one when [`Caps::max_free_per_day`] free escrows were stored this
    /// UTC day ([`Inserted::FreeCapReached`]); otherwise as
    /// [`Storage::insert_escrow`] (free) or [`Storage::insert_escrow_paid`],
    /// a stored free escrow counted in its day. The escrows held are a
    /// counter kept with every insert, deletion and sweep, not a count.
    /// Durable before it returns.
    fn insert_escrow_capped(
        &self,
        id: &StoredId,
        expires: i64,
        sealed: &[u8],
        spend: Option<&Spend>,
        caps: &Caps,
        now: i64,
    ) -> StorageResult<Inserted>;
    /// Store many escrows at once (bulk import, benchmarks): ids must be
    /// new; rows whose id is taken are skipped. Returns how many were
    /// stored. The default inserts one by one.
    fn insert_escrows(&self, rows: &[(StoredId, i64, Vec<u8>)], now: i64) -> StorageResult<usize> {
        let mut n = 0;
        for (id, expires, sealed) in rows {
            if self.insert_escrow(id, *expires, sealed, now)? {
                n += 1;
            }
        }
        Ok(n)
    }
    /// Look an escrow up.
    fn get_escrow(&self, id: &StoredId, now: i64) -> StorageResult<Lookup>;
    /// Remove an escrow and its code; returns whether it existed.
    fn delete_escrow(&self, id: &StoredId) -> StorageResult<bool>;
    /// Count a verification of `id` in a fixed window of `window` seconds,
    /// before its code is sent. Returns `None`, changing nothing, when
    /// `max` were already counted in the window (or there is no such
    /// escrow, or it is frozen). The pending code is left as it is: the new one replaces it
    /// only once delivered ([`Storage::set_code`]), so a code nobody
    /// received can never be guessed at or displace one somebody did.
    fn start_verification(
        &self,
        id: &StoredId,
        now: i64,
        window: i64,
        max: u32,
    ) -> StorageResult<Option<Started>>;
    /// [`Storage::charge_delivery`] for the message carrying a new code,
    /// then [`Storage::start_verification`] for its escrow, in one
    /// transaction and one sync: both count, or neither does (a full
    /// window gives the message's charge back before anything is
    /// written). A refused charge is reported first, as when the two are
    /// made one after the other. Durable before it returns.
    fn charge_and_start_verification(
        &self,
        charge: &Charge,
        id: &StoredId,
        now: i64,
        window: i64,
        max: u32,
    ) -> StorageResult<VerificationCharge>;
    /// Make `mac` (the keyed hash of a code just delivered) the pending
    /// code of the escrow `id` whose stored data is `sealed` (as read
    /// before the delivery), replacing a code that expires no later: of
    /// two codes delivered at once, the one requested last stays pending,
    /// whichever arrived last. Returns false, storing nothing, if that
    /// escrow is gone (deleted, swept, or replaced by another escrow with
    /// the same id while the code was on its way) or frozen.
    fn set_code(
        &self,
        id: &StoredId,
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
    fn verification_failed(
        &self,
        id: &StoredId,
        started: Started,
        forgive: u32,
    ) -> StorageResult<bool>;
    /// Try `mac` (the keyed hash of a code the user typed) against the
    /// pending code of `id`, compared in constant time, in one durable
    /// transaction with the escrow's guessing budget (`limits`): a frozen
    /// escrow, or one whose window's wrong guesses are spent, compares
    /// nothing and changes nothing; a match consumes the code; a mismatch
    /// spends an attempt of the code and a wrong guess of the window and
    /// of the escrow's life, and the last of its life freezes the escrow
    /// for good (voiding its code).
    fn check_code(
        &self,
        id: &StoredId,
        mac: &[u8],
        now: i64,
        limits: &GuessLimits,
    ) -> StorageResult<CodeCheck>;
    /// [`Storage::check_code`] for an escrow verified by an authenticator
    /// app (`totp:`), whose codes the protocol layer checks: `step` is the
    /// TOTP time step whose code the user typed (`None`: no step around
    /// now matched). In the same one durable transaction, and with the
    /// same budget and outcomes: a frozen or paused escrow compares
    /// nothing; the pending code row (set by `verify`: the recovery
    /// window) must be there, live and with attempts left; the code is
    /// right only for a step later than the last step accepted for this
    /// escrow, which becomes `step` (each code opens once, across
    /// instances and restarts) and the pending row is consumed; otherwise
    /// (no match, or a replayed step) it is a wrong guess.
    fn check_totp(
        &self,
        id: &StoredId,
        step: Option<i64>,
        now: i64,
        limits: &GuessLimits,
    ) -> StorageResult<CodeCheck>;
    /// Start the delayed release of escrow `id` (its right code just
    /// arrived): due at `due`, stoppable with the cancel token whose keyed
    /// hash is `cancel`. Returns false, changing nothing, when a release
    /// is pending or was stopped already, or the escrow is gone or frozen.
    /// Durable before it returns.
    fn start_release(&self, id: &StoredId, due: i64, cancel: &[u8]) -> StorageResult<bool>;
    /// Undo [`Storage::start_release`] (its notices could not all go
    /// out): no release is pending any more. A stopped one stays stopped.
    /// Durable before it returns.
    fn abort_release(&self, id: &StoredId) -> StorageResult<()>;
    /// When the release started with the cancel token hashed `cancel` is
    /// due ([`RELEASE_STOPPED`] once stopped), or `None`.
    fn release_by_cancel(&self, cancel: &[u8]) -> StorageResult<Option<i64>>;
    /// Stop the release started with the cancel token hashed `cancel`
    /// while its time is still to come (`due > now`), for good. Durable
    /// before it returns.
    fn cancel_release(&self, cancel: &[u8], now: i64) -> StorageResult<ReleaseCancel>;
    /// Remove everything expired.
    fn sweep(&self, now: i64) -> StorageResult<Swept>;
    /// Counts for `stats`.
    fn counts(&self) -> StorageResult<Counts>;
    /// Count a message against every budget of `charge`, in one
    /// transaction: refused, changing nothing, when the recipient is
    /// suppressed, or (unless `force`) when any budget, and its reserve if
    /// `reserve_ok`, is spent. Durable before it returns.
    fn charge_delivery(&self, charge: &Charge, now: i64) -> StorageResult<Charged>;
    /// Give back counts of [`Storage::charge_delivery`] (the message did
    /// not go out); counts of windows that have ended are left alone.
    fn refund_delivery(&self, counted: &[Counted]) -> StorageResult<()>;
    /// Put a recipient's keyed hash on the suppression list; returns
    /// whether it was not on it yet. Durable before it returns.
    fn suppress(&self, recipient: &[u8; 16], now: i64) -> StorageResult<bool>;
    /// Whether a recipient's keyed hash is on the suppression list.
    fn is_suppressed(&self, recipient: &[u8; 16]) -> StorageResult<bool>;
    /// Count a `status` call on the escrow `id` in a fixed window of
    /// `window` seconds; returns false, changing nothing, when `max` were
    /// already counted in the window. Durable before it returns (a limit
    /// depends on it).
    fn count_status(&self, id: &StoredId, now: i64, window: i64, max: u32) -> StorageResult<bool>;
}
