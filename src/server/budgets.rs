//! Delivery budgets: no mail or SMS cannon.
//!
//! Every message the server sends goes through [`Server::send`] (or its
//! two halves, [`Server::charge`] then [`Server::deliver_charged`], when a
//! caller must do something between counting and sending). Before a
//! message goes out:
//!
//! - its recipient must not be on the suppression list (an opt-out);
//! - an SMS must go to a calling code of `outbound.sms_countries`;
//! - it is counted, in one storage transaction, against the recipient's
//!   hourly and daily budgets and the server's hourly budget for its kind.
//!
//! A recipient is the keyed hash ([`super::seal::Keys::recipient`]) of its
//! normalised address ([`recipient_name`]): `tel:` and `sms:` of one
//! number, or two spellings of one e-mail domain, are one recipient, and
//! the database never holds the address.
//!
//! **The reserve.** An attacker can make fresh escrows naming anyone and
//! spend that address's budget; so escrows older than
//! `outbound.reserve_after_seconds` may, once the budget is spent, also
//! draw on a reserve that younger escrows cannot touch. The owner's own
//! escrow, made long before, still gets its code during a flood of fresh
//! ones.
//!
//! **Classes.** [`MessageClass::Code`] and [`MessageClass::Notice`] are
//! refused when over budget. [`MessageClass::Alert`] (security notices,
//! e.g. "your escrow was frozen after too many wrong guesses") is never
//! refused for a spent budget, but is counted, and honours the opt-out and
//! the SMS countries.

use crate::proto::Identity;
use crate::server::answer::{ApiError, ApiResult, ErrorKind};
use crate::server::delivery::{Contact, Outgoing};
use crate::server::seal::RECIPIENT_LEN;
use crate::server::storage::{
    BudgetLimit, Charge, Charged, Counted, Started, StoredId, VerificationCharge,
};
use crate::server::Server;

/// Seconds in an hour and a day (the budget windows).
const HOUR: i64 = 3600;
const DAY: i64 = 24 * 3600;

/// What kind of message is being sent, for the budgets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageClass {
    /// A verification code: refused when over budget.
    Code,
    /// A notice to a watcher (`notify`): refused when over budget.
    Notice,
    /// A security alert to the escrow's own identities (a lockout, a
    /// freeze): sent even when the budgets are spent (and counted); still
    /// refused to an address that opted out or an SMS country not allowed.
    Alert,
}

/// What [`Server::charge`] counted: give it to [`Server::deliver_charged`]
/// (which gives it back if the delivery fails) or [`Server::refund`].
#[derive(Debug)]
#[must_use = "a charge is delivered or refunded"]
pub struct Spent {
    counted: Vec<Counted>,
}

/// The digits of a calling code (`"354"`, `"+44"`, `"1"`), if it is one.
pub fn calling_code(text: &str) -> Option<String> {
    let d = text.trim().strip_prefix('+').unwrap_or(text.trim());
    (!d.is_empty() && d.len() <= 4 && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0'))
        .then(|| d.to_string())
}

/// The calling code of an ISO 3166 country (`IS` → `354`); `None` for
/// `??` and codes we do not know. NANP countries other than the US and
/// Canada get their four-digit prefix (`JM` → `1876`); `US` and `CA` get
/// `1`, which covers the whole plan (Caribbean numbers included: list
/// prefixes yourself in `sms_countries` to be narrower).
pub fn country_calling_code(iso: &str) -> Option<&'static str> {
    let iso = iso.trim().to_ascii_uppercase();
    COUNTRY_CODES.split_whitespace().find_map(|e| {
        let (c, code) = e.split_at(2);
        (c == iso).then_some(code)
    })
}

/// ISO 3166 alpha-2 code and calling code, one pair per word.
const COUNTRY_CODES: &str = "\
AD376 AE971 AF93 AG1268 AI1264 AL355 AM374 AO244 AR54 AS1684 AT43 AU61 AW297 AX358 AZ994 \
BA387 BB1246 BD880 BE32 BF226 BG359 BH973 BI257 BJ229 BL590 BM1441 BN673 BO591 BQ599 BR55 \
BS1242 BT975 BW267 BY375 BZ501 CA1 CD243 CF236 CG242 CH41 CI225 CK682 CL56 CM237 CN86 CO57 \
CR506 CU53 CV238 CW599 CY357 CZ420 DE49 DJ253 DK45 DM1767 DO1809 DZ213 EC593 EE372 EG20 \
ER291 ES34 ET251 FI358 FJ679 FK500 FM691 FO298 FR33 GA241 GB44 GD1473 GE995 GF594 GG44 \
GH233 GI350 GL299 GM220 GN224 GP590 GQ240 GR30 GT502 GU1671 GW245 GY592 HK852 HN504 HR385 \
HT509 HU36 ID62 IE353 IL972 IM44 IN91 IQ964 IR98 IS354 IT39 JE44 JM1876 JO962 JP81 KE254 \
KG996 KH855 KI686 KM269 KN1869 KP850 KR82 KW965 KY1345 KZ7 LA856 LB961 LC1758 LI423 LK94 \
LR231 LS266 LT370 LU352 LV371 LY218 MA212 MC377 MD373 ME382 MF590 MG261 MH692 MK389 ML223 \
MM95 MN976 MO853 MP1670 MQ596 MR222 MS1664 MT356 MU230 MV960 MW265 MX52 MY60 MZ258 NA264 \
NC687 NE227 NG234 NI505 NL31 NO47 NP977 NR674 NU683 NZ64 OM968 PA507 PE51 PF689 PG675 PH63 \
PK92 PL48 PM508 PR1787 PS970 PT351 PW680 PY595 QA974 RE262 RO40 RS381 RU7 RW250 SA966 SB677 \
SC248 SD249 SE46 SG65 SH290 SI386 SK421 SL232 SM378 SN221 SO252 SR597 SS211 ST239 SV503 \
SX1721 SY963 SZ268 TC1649 TD235 TG228 TH66 TJ992 TL670 TK690 TM993 TN216 TO676 TR90 TT1868 \
TV688 TW886 TZ255 UA380 UG256 US1 UY598 UZ998 VA39 VC1784 VE58 VG1284 VI1340 VN84 VU678 \
WF681 WS685 YE967 YT262 ZA27 ZM260 ZW263";

/// The E.164 form (`+3545885522`) of a phone address: `+` or `00` starts
/// an international number; anything else is national to `home` (the
/// server's calling code), a single leading trunk `0` dropped. `None`
/// when it is national and there is no home calling code.
pub fn e164(address: &str, home: Option<&str>) -> Option<String> {
    let a = address.trim();
    let digits: String = a.chars().filter(char::is_ascii_digit).collect();
    if a.starts_with('+') {
        Some(format!("+{digits}"))
    } else if let Some(d) = digits.strip_prefix("00") {
        Some(format!("+{d}"))
    } else {
        let h = home?;
        let national = digits.strip_prefix('0').unwrap_or(&digits);
        Some(format!("+{h}{national}"))
    }
}

/// The budget group of an identity kind: `sms` for `tel:` and `sms:`,
/// `email` for `email:` and `mailto:`, others by their own name.
pub fn kind_group(kind: &str) -> &str {
    match kind {
        "tel" | "sms" => "sms",
        "email" | "mailto" => "email",
        k => k,
    }
}

/// The normalised name of a recipient (what its keyed hash is taken of):
/// e-mail as `email:local@domain` with the domain lower-cased (the local
/// part is the domain's to interpret, so kept as is), phone numbers as
/// `sms:+E164` (`tel:` and `sms:` alike), other kinds as `kind:address`.
/// A national number with no home calling code keeps its digits.
pub fn recipient_name(id: &Identity, home: Option<&str>) -> String {
    let addr = id.address();
    match kind_group(id.kind()) {
        "email" => match addr.rsplit_once('@') {
            Some((local, domain)) => format!("email:{local}@{}", domain.to_ascii_lowercase()),
            None => format!("email:{addr}"),
        },
        "sms" => match e164(addr, home) {
            Some(n) => format!("sms:{n}"),
            None => format!(
                "sms-national:{}",
                addr.chars()
                    .filter(char::is_ascii_digit)
                    .collect::<String>()
            ),
        },
        k => format!("{k}:{addr}"),
    }
}

impl Server {
    /// The calling code of this server's `country_code`, if known.
    pub(crate) fn home_calling_code(&self) -> Option<&'static str> {
        country_calling_code(&self.cfg.country_code)
    }

    /// The calling codes SMS may go to (`["*"]`: any), by configuration.
    fn sms_allowed(&self) -> Vec<String> {
        match &self.cfg.outbound.sms_countries {
            Some(list) => list
                .iter()
                .filter_map(|c| {
                    if c.trim() == "*" {
                        Some("*".to_string())
                    } else {
                        calling_code(c)
                    }
                })
                .collect(),
            None => self
                .home_calling_code()
                .map(|c| vec![c.to_string()])
                .unwrap_or_default(),
        }
    }

    /// Refuse an identity the server will not send to because of where it
    /// is: SMS (kinds `tel`, `sms`) only to the allowed calling codes.
    pub(crate) fn check_destination(&self, to: &Identity) -> ApiResult<()> {
        if kind_group(to.kind()) != "sms" {
            return Ok(());
        }
        let allowed = self.sms_allowed();
        if allowed.is_empty() {
            return Err(ApiError::new(
                ErrorKind::Unsupported,
                "This server sends no SMS yet: its operator has not said to which \
                 countries (outbound.sms_countries)",
            ));
        }
        if allowed.iter().any(|c| c == "*") {
            return Ok(());
        }
        let list = allowed
            .iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let ok = e164(to.address(), self.home_calling_code())
            .is_some_and(|n| allowed.iter().any(|c| n[1..].starts_with(c.as_str())));
        if ok {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorKind::Unsupported,
                format!(
                    "This server sends SMS only to numbers with the calling code {list} \
                     (write numbers as +CC...)"
                ),
            ))
        }
    }

    /// The keyed hash a recipient is known by.
    pub(crate) fn recipient_hash(&self, to: &Identity) -> [u8; RECIPIENT_LEN] {
        self.keys
            .recipient(&recipient_name(to, self.home_calling_code()))
    }

    /// The budgets a message to `to` is counted against.
    fn limits(&self, rcpt: &[u8; RECIPIENT_LEN], to: &Identity) -> Vec<BudgetLimit> {
        let o = &self.cfg.outbound;
        let scope = format!("rcpt:{}", hex(rcpt));
        let group = kind_group(to.kind());
        let per_kind = o
            .per_kind_per_hour
            .get(group)
            .copied()
            .unwrap_or(o.other_kinds_per_hour);
        let kind_reserve =
            u32::try_from(u64::from(per_kind) * u64::from(o.kind_reserve_percent) / 100)
                .unwrap_or(u32::MAX);
        vec![
            BudgetLimit {
                scope: scope.clone(),
                window: HOUR,
                limit: o.per_recipient_per_hour,
                reserve: o.reserve_per_hour,
                shared: false,
            },
            BudgetLimit {
                scope,
                window: DAY,
                limit: o.per_recipient_per_day,
                reserve: o.reserve_per_day,
                shared: false,
            },
            BudgetLimit {
                scope: format!("kind:{group}"),
                window: HOUR,
                limit: per_kind,
                reserve: kind_reserve,
                shared: true,
            },
        ]
    }

    /// Check a message to `to` may go out and count it against every
    /// budget, in one storage transaction; a refusal changes nothing.
    /// `escrow_created` is the unix time the escrow it is about was made
    /// (0: older than anything), which decides whether it may draw on the
    /// reserve.
    pub(crate) fn charge(
        &self,
        to: &Identity,
        escrow_created: i64,
        class: MessageClass,
    ) -> ApiResult<Spent> {
        let now = self.now();
        let charge = self.charge_for(to, escrow_created, class, now)?;
        let charged = self.storage.charge_delivery(&charge, now)?;
        self.charged(charged, &charge.limits, to)
    }

    /// [`Server::charge`] for the message carrying a new code of the
    /// escrow `sid`, and the count of that verification in the escrow's
    /// hour (at most `per_hour`), in one storage transaction and one sync.
    /// `Ok(None)`: the hour is full, and nothing was counted.
    pub(crate) fn charge_code(
        &self,
        to: &Identity,
        escrow_created: i64,
        sid: &StoredId,
        per_hour: u32,
    ) -> ApiResult<Option<(Spent, Started)>> {
        let now = self.now();
        let charge = self.charge_for(to, escrow_created, MessageClass::Code, now)?;
        match self
            .storage
            .charge_and_start_verification(&charge, sid, now, HOUR, per_hour)?
        {
            VerificationCharge::Refused(refused) => {
                self.charged(refused, &charge.limits, to).map(|_| None)
            }
            VerificationCharge::WindowFull => Ok(None),
            VerificationCharge::Started(counted, started) => {
                let spent = self.charged(Charged::Counted(counted), &charge.limits, to)?;
                Ok(Some((spent, started)))
            }
        }
    }

    /// What a message to `to` is counted against (after the opt-out list
    /// and the SMS countries, which refuse before anything is counted).
    fn charge_for(
        &self,
        to: &Identity,
        escrow_created: i64,
        class: MessageClass,
        now: i64,
    ) -> ApiResult<Charge> {
        self.check_destination(to)?;
        let rcpt = self.recipient_hash(to);
        let limits = self.limits(&rcpt, to);
        Ok(Charge {
            recipient: rcpt,
            limits,
            reserve_ok: now.saturating_sub(escrow_created)
                >= self.cfg.outbound.reserve_after_seconds,
            force: class == MessageClass::Alert,
        })
    }

    /// The answer to what the storage did with a charge.
    fn charged(&self, charged: Charged, limits: &[BudgetLimit], to: &Identity) -> ApiResult<Spent> {
        match charged {
            Charged::Suppressed => Err(ApiError::new(
                ErrorKind::BadRequest,
                format!(
                    "This server sends nothing to that address any more: its owner opted out. \
                     To undo that, write to {}",
                    self.abuse_contact()
                ),
            )),
            Charged::Over(i) => {
                let l = &limits[i];
                let (what, when) = match (i, l.window) {
                    (2, _) => (
                        format!(
                            "this server's budget of {} {} messages an hour is spent",
                            l.limit,
                            kind_group(to.kind())
                        ),
                        "an hour",
                    ),
                    (_, HOUR) => (
                        format!(
                            "that address has had the {} messages an hour it may get from this server",
                            l.limit
                        ),
                        "an hour",
                    ),
                    _ => (
                        format!(
                            "that address has had the {} messages a day it may get from this server",
                            l.limit
                        ),
                        "a day",
                    ),
                };
                if i == 2 {
                    tracing::warn!(
                        kind = kind_group(to.kind()),
                        "server-wide hourly delivery budget spent: refusing messages"
                    );
                }
                let mut e = ApiError::rate_limited();
                e.message = format!(
                    "Sorry, rate limited: {what}. Nothing was sent or counted; try again within {when}."
                );
                Err(e)
            }
            Charged::Counted(counted) => {
                self.warn_if_budget_low(&counted, limits, to);
                Ok(Spent { counted })
            }
        }
    }

    /// Warn once an hour's server-wide budget crosses `warn_percent`.
    fn warn_if_budget_low(&self, counted: &[Counted], limits: &[BudgetLimit], to: &Identity) {
        let pct = u64::from(self.cfg.outbound.warn_percent);
        if let (Some(c), Some(l)) = (counted.get(2), limits.get(2)) {
            let limit = u64::from(l.limit);
            let used = u64::from(c.used);
            let mark = limit * pct;
            if !c.reserve && used >= 1 && used * 100 >= mark && (used - 1) * 100 < mark {
                tracing::warn!(
                    kind = kind_group(to.kind()),
                    used,
                    limit,
                    "{pct}% of this hour's server-wide delivery budget is spent"
                );
            }
        }
    }

    /// Give back what [`Server::charge`] counted (the message was not sent).
    pub(crate) fn refund(&self, charged: Spent) {
        if let Err(e) = self.storage.refund_delivery(&charged.counted) {
            tracing::error!("giving back a delivery budget: {e}");
        }
    }

    /// Send `msg`, already charged, with the opt-out link and abuse
    /// contact filled in; a failed delivery gives the charge back.
    pub(crate) fn deliver_charged(&self, msg: &Outgoing, charged: Spent) -> ApiResult<()> {
        let dlv = match self.deliverer(msg.to.kind()) {
            Ok(d) => d.clone(),
            Err(e) => {
                self.refund(charged);
                return Err(e);
            }
        };
        let mut m = msg.clone();
        m.contact = self.contact_for(&msg.to);
        match dlv.deliver(&m) {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::warn!(via = dlv.name(), "delivery failed: {e}");
                self.refund(charged);
                Err(ApiError::new(
                    ErrorKind::Internal,
                    "Could not deliver the message; try again later",
                ))
            }
        }
    }

    /// Send one message: every message the server sends goes through here
    /// (or [`Server::charge`] + [`Server::deliver_charged`]). Refused,
    /// changing nothing, to an address that opted out, an SMS country not
    /// allowed, or (except [`MessageClass::Alert`]) over a budget.
    /// `escrow_created` is when the escrow the message is about was made.
    pub fn send(&self, msg: &Outgoing, escrow_created: i64, class: MessageClass) -> ApiResult<()> {
        self.deliverer(msg.to.kind())?;
        let charged = self.charge(&msg.to, escrow_created, class)?;
        self.deliver_charged(msg, charged)
    }

    /// The abuse contact, or where to find the operator.
    pub(crate) fn abuse_contact(&self) -> String {
        self.cfg
            .outbound
            .abuse_contact
            .clone()
            .unwrap_or_else(|| format!("the operator of this server ({})", self.cfg.about_url))
    }

    /// The footer facts of a message to `to`: abuse contact, opt-out link.
    fn contact_for(&self, to: &Identity) -> Contact {
        let rcpt = self.recipient_hash(to);
        Contact {
            abuse: self.abuse_contact(),
            optout_url: self
                .optout_base()
                .map(|base| format!("{base}/passcrow/optout/{}", self.optout_token(&rcpt))),
        }
    }

    /// The public base URL, without a trailing slash.
    pub(crate) fn optout_base(&self) -> Option<String> {
        self.cfg
            .outbound
            .public_url
            .as_deref()
            .map(|u| u.trim_end_matches('/').to_string())
    }

    /// The opt-out token of a recipient: its hash and the server's tag on
    /// it, base64url.
    pub(crate) fn optout_token(&self, rcpt: &[u8; RECIPIENT_LEN]) -> String {
        use base64ct::Encoding;
        let mut raw = rcpt.to_vec();
        raw.extend_from_slice(&self.keys.optout_tag(rcpt));
        base64ct::Base64UrlUnpadded::encode_string(&raw)
    }

    /// The recipient an opt-out token names, if the server made it.
    pub(crate) fn optout_recipient(&self, token: &str) -> Option<[u8; RECIPIENT_LEN]> {
        use base64ct::Encoding;
        if token.len() > 64 {
            return None;
        }
        let raw = base64ct::Base64UrlUnpadded::decode_vec(token).ok()?;
        let want = RECIPIENT_LEN + crate::server::seal::OPTOUT_TAG_LEN;
        if raw.len() != want {
            return None;
        }
        let mut rcpt = [0u8; RECIPIENT_LEN];
        rcpt.copy_from_slice(&raw[..RECIPIENT_LEN]);
        let tag = self.keys.optout_tag(&rcpt);
        crate::crypto::ct_eq(&tag, &raw[RECIPIENT_LEN..]).then_some(rcpt)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_normalise() {
        let n = |s: &str| recipient_name(&Identity::parse(s).unwrap(), Some("354"));
        assert_eq!(n("a@EXAMPLE.org"), n("mailto:a@example.ORG"));
        assert_ne!(n("A@example.org"), n("a@example.org"));
        assert_eq!(n("tel:+354 588-5522"), n("sms:+3545885522"));
        assert_eq!(n("tel:5885522"), n("sms:00354 5885522"));
        assert_eq!(n("tel:05885522"), "sms:+3545885522");
        assert_ne!(n("tel:+3545885522"), n("tel:+4415885522"));
        let none = recipient_name(&Identity::parse("tel:5885522").unwrap(), None);
        assert_eq!(none, "sms-national:5885522");
        assert_eq!(n("signal:+3545885522"), "signal:+3545885522");
    }

    #[test]
    fn calling_codes() {
        assert_eq!(country_calling_code("is"), Some("354"));
        assert_eq!(country_calling_code("US"), Some("1"));
        assert_eq!(country_calling_code("JM"), Some("1876"));
        assert_eq!(country_calling_code("??"), None);
        assert_eq!(calling_code("+44").as_deref(), Some("44"));
        for bad in ["", "+", "12345", "0", "4a", "*"] {
            assert_eq!(calling_code(bad), None, "{bad}");
        }
        // Every entry parses: two letters and a calling code.
        for e in COUNTRY_CODES.split_whitespace() {
            assert!(e.len() >= 3 && calling_code(&e[2..]).is_some(), "{e}");
            assert!(e[..2].bytes().all(|b| b.is_ascii_uppercase()), "{e}");
        }
    }
}
