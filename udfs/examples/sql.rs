//! Runs SQL statements (arguments, or stdin separated by `;;`) against a bare session with
//! Amoeba's functions registered, and prints the results: a quick way to try the functions.
//!
//! `cargo run -p amoeba-udfs --example sql -- "SELECT roi(3000, -2000)"`

use datafusion::prelude::SessionContext;

#[tokio::main(flavor = "current_thread")]
async fn main() -> datafusion::error::Result<()> {
    let ctx = SessionContext::new();
    amoeba_udfs::register_all(&ctx)?;
    let mut statements: Vec<String> = std::env::args().skip(1).collect();
    if statements.is_empty() {
        let mut input = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut input)?;
        statements = input.split(";;").map(str::to_string).collect();
    }
    for sql in statements.iter().filter(|s| !s.trim().is_empty()) {
        println!("> {}", sql.trim());
        match ctx.sql(sql).await {
            Ok(df) => match df.show().await {
                Ok(()) => {}
                Err(e) => println!("ERROR: {e}"),
            },
            Err(e) => println!("ERROR: {e}"),
        }
    }
    Ok(())
}
