//! Re-embeds the migrations (`sqlx::migrate!` in `store`) when one is added
//! or changed: cargo does not watch the files a macro reads.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
