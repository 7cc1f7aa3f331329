//! The server's small pages for people: the about page (`GET /`,
//! `GET /passcrow/about`: operator, abuse contact, opt-out) and the
//! opt-out link of every message (`/passcrow/optout/TOKEN`).
//!
//! Opting out takes two steps on purpose: `GET` (what a mail scanner or a
//! link preview does) only shows a page with a button; the button's
//! `POST` puts the address on the suppression list. The token is the
//! recipient's keyed hash with the server's MAC on it, so nobody can opt
//! out an address they cannot read messages at, and the page never
//! learns or shows the address.

use crate::server::Server;

/// A page: HTTP status, content type, body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

const HTML: &str = "text/html; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// Escape text for HTML.
pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(super) fn html(status: u16, title: &str, body: &str) -> Page {
    Page {
        status,
        content_type: HTML,
        body: format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"robots\" content=\"noindex\"><title>{t}</title></head>\n\
             <body><h1>{t}</h1>\n{body}\n</body></html>\n",
            t = esc(title)
        ),
    }
}

impl Server {
    /// The about page (plain text): who runs this server, whom to tell
    /// about abuse, how to stop messages.
    pub(crate) fn about_page(&self) -> Page {
        let stop = if self.optout_base().is_some() {
            "Every message this server sends ends with a link that stops all\n\
             further messages from this server to that address."
                .to_string()
        } else {
            format!(
                "To stop all messages from this server to an address, write to\n{}.",
                self.abuse_contact()
            )
        };
        Page {
            status: 200,
            content_type: TEXT,
            body: format!(
                "passcrow-server {version}\n\n\
                 This is a Passcrow community server: it keeps encrypted fragments\n\
                 of recovery data and sends verification codes to their owners.\n\n\
                 Operator: {about}\n\
                 Country: {country}\n\
                 Abuse contact: {abuse}\n\n\
                 Got a message you did not ask for? Someone named your address when\n\
                 asking this server to keep data; nothing happens unless the code is\n\
                 used. {stop}\n\n\
                 Clients use POST /passcrow/METHOD (see https://passcrow.org/).\n",
                version = env!("CARGO_PKG_VERSION"),
                about = self.cfg.about_url,
                country = self.cfg.country_code,
                abuse = self.abuse_contact(),
            ),
        }
    }

    /// `/passcrow/optout/TOKEN`: `confirm` false (GET) shows the button,
    /// true (POST) opts the address out.
    pub(crate) fn optout_page(&self, token: &str, confirm: bool) -> Page {
        let Some(rcpt) = self.optout_recipient(token) else {
            return html(
                400,
                "This opt-out link is not valid",
                &format!(
                    "<p>This link was not made by this server, or it was cut short.\n\
                     Copy the whole link from the message, or write to {}.</p>",
                    esc(&self.abuse_contact())
                ),
            );
        };
        let undo = format!(
            "<p>To undo this later, write to {}.</p>",
            esc(&self.abuse_contact())
        );
        if !confirm {
            let already = matches!(self.storage.is_suppressed(&rcpt), Ok(true));
            if already {
                return html(
                    200,
                    "Already stopped",
                    &format!("<p>This server sends nothing more to this address.</p>\n{undo}"),
                );
            }
            return html(
                200,
                "Stop messages from this server?",
                "<p>This stops every message from this Passcrow server to the address\n\
                 this link was sent to: verification codes and notices, for every\n\
                 escrow naming it. Recovery through this server will then fail for\n\
                 that address.</p>\n\
                 <form method=\"post\"><button type=\"submit\">Stop all messages</button></form>",
            );
        }
        match self.storage.suppress(&rcpt, self.now()) {
            Ok(_) => {
                tracing::info!("a recipient opted out");
                html(
                    200,
                    "Stopped",
                    &format!("<p>This server will send nothing more to this address.</p>\n{undo}"),
                )
            }
            Err(e) => {
                tracing::error!("opt-out: {e}");
                html(
                    500,
                    "Something went wrong",
                    "<p>Nothing was changed; please try again later.</p>",
                )
            }
        }
    }
}
