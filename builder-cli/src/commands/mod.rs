//! One module per subcommand: turn arguments into library calls and print the result.

pub mod build;
pub mod images;
pub mod parse;
