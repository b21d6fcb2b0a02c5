//! The Dockerfile front end: text → typed [`Dockerfile`], and word expansion.

pub mod ast;
pub mod shell;

pub use ast::*;
