//! `flotilla fleet init`: create the fleet's CA, server certificate and admin credentials.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::home::FleetHome;

#[derive(Debug, Args)]
pub struct FleetArgs {
    #[command(subcommand)]
    pub command: FleetCommand,
}

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Create the fleet CA, the server certificate, an admin certificate and an API token.
    Init(InitArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The fleet's data directory.
    #[arg(long, env = "FLOTILLA_HOME", default_value_os_t = FleetHome::default_dir())]
    pub dir: PathBuf,
    /// A name for the fleet, shown in the CA's subject.
    #[arg(long, default_value = "flotilla")]
    pub name: String,
    /// Another DNS name or IP address for the server certificate (localhost and loopback are
    /// always included). Repeatable.
    #[arg(long = "san")]
    pub sans: Vec<String>,
    /// Replace an existing CA (every certificate it issued stops working).
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: FleetArgs) -> anyhow::Result<()> {
    match args.command {
        FleetCommand::Init(init) => {
            let home = FleetHome::new(&init.dir);
            let report = home.init(&init.name, &init.sans, init.force)?;
            println!("fleet initialised in {}", init.dir.display());
            println!(
                "  CA certificate      {}  ({})",
                home.path("ca.crt").display(),
                report.ca_fingerprint
            );
            println!(
                "  server certificate  {}  for {}",
                home.path("server.crt").display(),
                report.server_names.join(", ")
            );
            println!("  admin certificate   {}", home.path("admin.crt").display());
            println!(
                "  API token           {} (mode 0600)",
                home.path("admin-token").display()
            );
            println!(
                "next: `flotilla serve --dir {0}`, then `flotilla cluster add NAME --dir {0}`",
                init.dir.display()
            );
            Ok(())
        }
    }
}
