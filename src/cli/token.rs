//! `jobslot token new` and `jobslot token hash`: API tokens for the tokens
//! file (`--api-tokens-file`), which keeps only their SHA-256 hashes.

use super::Ctx;
use super::output::print_json;
use crate::api::access::{Role, hex, token_sha256_hex};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::io::Read;

/// What `jobslot token` does.
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Make a new random token and print it with its tokens-file entry.
    New {
        /// The token's name, logged with every change it makes and recorded
        /// as `createdBy` on the tasks it enqueues.
        #[arg(long)]
        name: String,
        /// read (every GET), operate (also enqueue, cancel, retry) or admin
        /// (also queues, workers and the rest).
        #[arg(long, default_value = "read", value_parser = parse_role)]
        role: Role,
    },
    /// Print the SHA-256 of a token read from stdin (trailing newline
    /// dropped), as the tokens file holds it.
    Hash,
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("{s:?} is not a role: use read, operate or admin"))
}

/// Runs `jobslot token …`.
pub fn run(ctx: &Ctx, action: TokenAction) -> Result<i32> {
    match action {
        TokenAction::New { name, role } => {
            if name.trim().is_empty() || name.contains(['"', '\\', '\n']) {
                bail!(
                    "the token name {name:?} must be non-empty, without quotes, backslashes or newlines"
                );
            }
            let mut bytes = [0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut bytes))
                .context("cannot read random bytes from /dev/urandom")?;
            let token = hex(&bytes);
            let sha256 = token_sha256_hex(&token);
            if ctx.json {
                print_json(&serde_json::json!({
                    "name": name, "role": role.as_str(), "token": token, "sha256": sha256,
                }));
            } else {
                println!("token: {token}\n");
                println!(
                    "Add this entry to the tokens file (--api-tokens-file); jobslot keeps only the hash, so keep the token now:\n"
                );
                println!("[[tokens]]\nname = \"{name}\"\nsha256 = \"{sha256}\"\nrole = \"{role}\"");
            }
            Ok(0)
        }
        TokenAction::Hash => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the token from stdin")?;
            let token = text.trim_end_matches(['\n', '\r']);
            if token.is_empty() {
                bail!("no token on stdin");
            }
            let sha256 = token_sha256_hex(token);
            if ctx.json {
                print_json(&serde_json::json!({ "sha256": sha256 }));
            } else {
                println!("{sha256}");
            }
            Ok(0)
        }
    }
}
