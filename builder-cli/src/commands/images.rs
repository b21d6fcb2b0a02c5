//! `kiln images`: list the local store.

use builder_core::export::store::{default_store_dir, list_images};

use crate::cli::ImagesArgs;
use crate::render;
use crate::{Exit, Failure};

/// Runs `kiln images`.
pub fn run(args: ImagesArgs) -> Result<(), Failure> {
    let dir = args.store.unwrap_or_else(default_store_dir);
    let images = list_images(&dir).map_err(|e| Failure {
        message: render::error(&e, None),
        exit: Exit::Failure,
    })?;
    let mut table = format!(
        "{:<40} {:<19} {:<21} {:>10}\n",
        "NAME", "DIGEST", "CREATED", "SIZE"
    );
    for image in images {
        table.push_str(&format!(
            "{:<40} {:<19} {:<21} {:>10}\n",
            image.name.as_deref().unwrap_or("<none>"),
            &image.digest.to_string()[..19],
            image.created.as_deref().unwrap_or("-"),
            human_size(image.size)
        ));
    }
    crate::stdout(&table)
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}
