//! The buildd engine.
