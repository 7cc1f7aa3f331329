//! The texts of messages, in English and Icelandic.

use super::{Notice, Outgoing};

fn is_icelandic(lang: &str) -> bool {
    let l = lang.trim().to_ascii_lowercase();
    l == "is" || l.starts_with("is-") || l.starts_with("is_")
}

fn clean(description: &str) -> String {
    // One line, no control characters, bounded.
    let d: String = description
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(100)
        .collect();
    let d = d.trim();
    if d.is_empty() {
        "Passcrow".into()
    } else {
        d.to_string()
    }
}

fn minutes(secs: i64) -> i64 {
    (secs.max(60) + 59) / 60
}

/// `HH:MM` of unix time `t`, in UTC.
fn utc_hhmm(t: i64) -> String {
    let s = t.rem_euclid(86_400);
    format!("{:02}:{:02}", s / 3600, s % 3600 / 60)
}

/// The subject line (the reference's: "DESCRIPTION Verification Code").
pub fn subject(m: &Outgoing) -> String {
    let d = clean(&m.description);
    match (&m.notice, is_icelandic(&m.language)) {
        (Notice::Code { .. }, false) => format!("{d} Verification Code"),
        (Notice::Code { .. }, true) => format!("{d} Staðfestingarkóði"),
        (Notice::RecoveryStarted { .. }, false) => format!("{d} Recovery Started"),
        (Notice::RecoveryStarted { .. }, true) => format!("{d} Endurheimt hafin"),
        (
            Notice::TooManyWrongCodes {
                paused_until: Some(_),
            },
            false,
        ) => {
            format!("{d} Too Many Wrong Codes")
        }
        (
            Notice::TooManyWrongCodes {
                paused_until: Some(_),
            },
            true,
        ) => {
            format!("{d} Of margir rangir kóðar")
        }
        (Notice::TooManyWrongCodes { paused_until: None }, false) => {
            format!("{d} Recovery Frozen")
        }
        (Notice::TooManyWrongCodes { paused_until: None }, true) => format!("{d} Endurheimt fryst"),
    }
}

/// The e-mail text, signature included (lines under 72 characters).
pub fn long(m: &Outgoing) -> String {
    let d = clean(&m.description);
    let is = is_icelandic(&m.language);
    let body = match (&m.notice, is) {
        (
            Notice::Code {
                code,
                timeout_seconds,
            },
            false,
        ) => format!(
            "{d}: {} is your verification code.\n\n\
             This code expires in {} minutes. Don't share it with\n\
             anyone. If you were not expecting this verification code,\n\
             please ignore this message.",
            code.expose_secret(),
            minutes(*timeout_seconds)
        ),
        (
            Notice::Code {
                code,
                timeout_seconds,
            },
            true,
        ) => format!(
            "{d}: {} er staðfestingarkóðinn þinn.\n\n\
             Kóðinn rennur út eftir {} mínútur. Ekki sýna neinum\n\
             þennan kóða. Ef þú áttir ekki von á þessum staðfestingarkóða,\n\
             skaltu hunsa þetta bréf.",
            code.expose_secret(),
            minutes(*timeout_seconds)
        ),
        (Notice::RecoveryStarted { code_sent_to }, false) => format!(
            "{d}: someone asked to recover this data, and a\n\
             verification code was sent to {code_sent_to}.\n\n\
             If that was you or someone you trust, all is well. If not,\n\
             someone may be trying to take over the data: warn its owner."
        ),
        (Notice::RecoveryStarted { code_sent_to }, true) => format!(
            "{d}: einhver bað um að endurheimta þessi gögn og\n\
             staðfestingarkóði var sendur á {code_sent_to}.\n\n\
             Ef það varst þú eða einhver sem þú treystir er allt í lagi.\n\
             Ef ekki, gæti einhver verið að reyna að komast yfir gögnin:\n\
             láttu eigandann vita."
        ),
        (
            Notice::TooManyWrongCodes {
                paused_until: Some(t),
            },
            false,
        ) => format!(
            "Too many wrong codes were tried for {d};\n\
             no code will be checked until {} UTC.\n\n\
             If that was not you, someone holding the recovery data may\n\
             be trying to guess the code. After a few more wrong codes\n\
             this server will freeze its part of the data for good. If\n\
             this is your data, protect it again (passcrow renew).",
            utc_hhmm(*t)
        ),
        (
            Notice::TooManyWrongCodes {
                paused_until: Some(t),
            },
            true,
        ) => format!(
            "Of margir rangir kóðar voru reyndir fyrir {d};\n\
             enginn kóði verður athugaður fyrr en kl. {} (UTC).\n\n\
             Ef þetta varst ekki þú gæti einhver sem hefur\n\
             endurheimtargögnin verið að reyna að giska á kóðann. Eftir\n\
             fáeina ranga kóða til viðbótar frystir þessi þjónn sinn hluta\n\
             gagnanna fyrir fullt og allt. Ef þú átt gögnin skaltu vernda\n\
             þau upp á nýtt (passcrow renew).",
            utc_hhmm(*t)
        ),
        (Notice::TooManyWrongCodes { paused_until: None }, false) => format!(
            "Too many wrong codes were tried for {d};\n\
             this server has frozen its part of the data for good:\n\
             it will never release it, and sends no more codes.\n\n\
             If this is your data, protect it again (passcrow renew) so\n\
             that it can be recovered."
        ),
        (Notice::TooManyWrongCodes { paused_until: None }, true) => format!(
            "Of margir rangir kóðar voru reyndir fyrir {d};\n\
             þessi þjónn hefur fryst sinn hluta endurheimtargagnanna\n\
             fyrir fullt og allt: hann lætur hann aldrei af hendi og\n\
             sendir enga fleiri kóða.\n\n\
             Ef þú átt gögnin skaltu vernda þau upp á nýtt\n\
             (passcrow renew) svo að hægt sé að endurheimta þau."
        ),
    };
    let sig = if is {
        format!(
            "Sent af Passcrow, opið kerfi til að endurheimta lykla og lykilorð.\n\
             Nánari upplýsingar: {}",
            m.about_url
        )
    } else {
        format!(
            "Generated by Passcrow, an open community system for key and\n\
             password recovery. Details: {}",
            m.about_url
        )
    };
    format!("{body}\n\n-- \n{sig}\n")
}

/// The SMS text.
pub fn short(m: &Outgoing) -> String {
    let d = clean(&m.description);
    match (&m.notice, is_icelandic(&m.language)) {
        (
            Notice::Code {
                code,
                timeout_seconds,
            },
            false,
        ) => format!(
            "{d}: {} is your verification code. It expires in {} minutes. \
             Don't share this code with anyone.",
            code.expose_secret(),
            minutes(*timeout_seconds)
        ),
        (
            Notice::Code {
                code,
                timeout_seconds,
            },
            true,
        ) => format!(
            "{d}: {} er staðfestingarkóðinn þinn. Hann rennur út eftir {} mínútur. \
             Ekki sýna neinum þennan kóða.",
            code.expose_secret(),
            minutes(*timeout_seconds)
        ),
        (Notice::RecoveryStarted { code_sent_to }, false) => {
            format!("{d}: recovery was started, a code was sent to {code_sent_to}.")
        }
        (Notice::RecoveryStarted { code_sent_to }, true) => {
            format!("{d}: endurheimt hafin, kóði sendur á {code_sent_to}.")
        }
        (
            Notice::TooManyWrongCodes {
                paused_until: Some(t),
            },
            false,
        ) => format!(
            "{d}: too many wrong codes were tried; none is checked until {} UTC. \
             If not you, re-protect (passcrow renew).",
            utc_hhmm(*t)
        ),
        (
            Notice::TooManyWrongCodes {
                paused_until: Some(t),
            },
            true,
        ) => format!(
            "{d}: of margir rangir kóðar reyndir; enginn athugaður fyrr en kl. {} (UTC). \
             Ef ekki þú, verndaðu upp á nýtt (passcrow renew).",
            utc_hhmm(*t)
        ),
        (Notice::TooManyWrongCodes { paused_until: None }, false) => format!(
            "{d}: too many wrong codes were tried; this escrow is frozen for good. \
             Re-protect it (passcrow renew)."
        ),
        (Notice::TooManyWrongCodes { paused_until: None }, true) => format!(
            "{d}: of margir rangir kóðar reyndir; varslan er fryst fyrir fullt og allt. \
             Verndaðu upp á nýtt (passcrow renew)."
        ),
    }
}
