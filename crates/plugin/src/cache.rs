//! The compiled-component cache: Cranelift output kept on disk as `.cwasm`, keyed on the
//! component's content hash and the engine's compatibility hash, so a restart does not recompile.

#![allow(unsafe_code)]

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::Engine;
use wasmtime::component::Component;

/// Compiles `wasm` (whose SHA-256 is `digest`), through the cache in `dir` when there is one.
pub fn load(engine: &Engine, wasm: &[u8], digest: &str, dir: Option<&Path>) -> wasmtime::Result<Component> {
    let Some(dir) = dir else {
        return Component::new(engine, wasm);
    };
    let path = artifact_path(engine, digest, dir);
    if path.exists() {
        // SAFETY: files in the cache directory are written only by `store` below, from
        // `Component::serialize` of this same engine configuration (the compatibility hash is
        // part of the file name); `deserialize_file` additionally checks the header and version.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok(component),
            Err(error) => tracing::warn!(path = %path.display(), "recompiling: cached component unusable: {error:#}"),
        }
    }
    let component = Component::new(engine, wasm)?;
    if let Err(error) = store(&component, &path) {
        tracing::warn!(path = %path.display(), "cannot cache compiled component: {error:#}");
    }
    Ok(component)
}

fn artifact_path(engine: &Engine, digest: &str, dir: &Path) -> PathBuf {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    dir.join(format!("{digest}-{:016x}.cwasm", hasher.finish()))
}

/// Writes the artifact next to its final name, then renames it, so readers never see half a file.
fn store(component: &Component, path: &Path) -> wasmtime::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let unique = WRITES.fetch_add(1, Ordering::Relaxed);
    let temporary = path.with_extension(format!("tmp-{}-{unique}", std::process::id()));
    std::fs::write(&temporary, component.serialize()?)?;
    std::fs::rename(&temporary, path)?;
    Ok(())
}
