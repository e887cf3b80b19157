//! The response future of the session service.

pub use palisade_core::response::ResponseFuture;
