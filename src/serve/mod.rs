//! `d1vec serve`: Cloudflare's REST API on localhost.

pub(crate) mod d1;
