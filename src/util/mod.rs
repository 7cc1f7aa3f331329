//! Small helpers the client, the server and the CLI share: the clock and
//! private files. Each exists once, here.

pub mod clock;
pub mod files;
