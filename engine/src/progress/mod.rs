//! Rendering progress events for people.

mod plain;

pub use plain::PlainPrinter;
