//! The `hookflow` binary.

fn main() {
    println!("hookflow {}", env!("CARGO_PKG_VERSION"));
}
