//! The response future of the JWT service.

pub use palisade_core::response::ResponseFuture;
