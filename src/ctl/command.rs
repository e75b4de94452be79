//! The commands of `fanzha ctl`, typed once (as mini-redis's `cmd/`): clap reads
//! them from the command line, the wire carries their words (`{"cmd": "lookup",
//! "args": ["www.example.com"]}`, the protocol of [`super`]), and the daemon reads
//! the words back with the same definition before it acts on them.

use std::path::PathBuf;

use clap::{CommandFactory, Parser};

use super::Request;

/// A command of `fanzha ctl`: one definition for the command line, the wire and
/// the daemon's dispatch.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Version, uptime, the serving list (serial, age, entries), the cache, the
    /// reporting backlog and the config path.
    Status,
    /// The verdict of the list the daemon is serving now (not a fresh compile).
    Lookup {
        /// Names to check (Unicode names are converted with IDNA).
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Re-read the config and the lists, as SIGHUP does, and wait until the new
    /// lists serve (or say why not).
    Reload,
    /// Forget cached answers: all of them, or NAME's and those of the names below it.
    FlushCache {
        /// A domain (all names when absent).
        name: Option<String>,
    },
    /// Every counter and gauge, as a table.
    Stats,
    /// The rules that blocked most since start.
    TopBlocked {
        /// How many.
        #[arg(default_value_t = 10)]
        n: usize,
    },
    /// The shadow rules (lists or places' categories on trial) that matched most
    /// since start; with a popularity list (a name per line, or a CSV whose first
    /// field is the name, such as the CrUX top sites), the rules that would block
    /// a popular name are flagged POPULAR.
    ShadowReport {
        /// How many.
        #[arg(default_value_t = 20)]
        n: usize,
        /// The popularity list (read by the daemon).
        #[arg(long, value_name = "FILE")]
        popular: Option<PathBuf>,
    },
    /// The config in force, every default filled in, the report secret hidden.
    DumpConfig,
}

/// The command line the daemon reads a request as.
#[derive(Debug, Parser)]
#[command(name = "fanzha ctl", disable_help_subcommand = true)]
struct Words {
    #[command(subcommand)]
    cmd: Command,
}

impl Command {
    /// Its name on the command line and the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Status => "status",
            Command::Lookup { .. } => "lookup",
            Command::Reload => "reload",
            Command::FlushCache { .. } => "flush-cache",
            Command::Stats => "stats",
            Command::TopBlocked { .. } => "top-blocked",
            Command::ShadowReport { .. } => "shadow-report",
            Command::DumpConfig => "dump-config",
        }
    }

    /// Whether it changes the daemon's state (logged at info, not debug).
    pub fn changes_state(&self) -> bool {
        matches!(self, Command::Reload | Command::FlushCache { .. })
    }

    /// The request that carries it: its words. A popularity list's path is made
    /// absolute, since the daemon reads it from another working directory.
    pub fn to_request(&self) -> Request {
        let args = match self {
            Command::Status | Command::Reload | Command::Stats | Command::DumpConfig => vec![],
            Command::Lookup { names } => names.clone(),
            Command::FlushCache { name } => name.iter().cloned().collect(),
            Command::TopBlocked { n } => vec![n.to_string()],
            Command::ShadowReport { n, popular } => {
                let mut args = vec![n.to_string()];
                if let Some(p) = popular {
                    let p = std::path::absolute(p).unwrap_or_else(|_| p.clone());
                    args.extend(["--popular".to_string(), p.display().to_string()]);
                }
                args
            }
        };
        Request {
            cmd: self.name().to_string(),
            args,
        }
    }

    /// The command a request carries, read as the command line reads it; else
    /// why not, with the usage (and, for an unknown command, the commands).
    pub fn from_request(req: &Request) -> Result<Command, String> {
        let words = ["fanzha ctl", req.cmd.as_str()]
            .into_iter()
            .chain(req.args.iter().map(String::as_str));
        match Words::try_parse_from(words) {
            Ok(w) => Ok(w.cmd),
            Err(e) => {
                let mut why = e.render().to_string().trim_end().to_string();
                let all = Words::command();
                if all.find_subcommand(&req.cmd).is_none() {
                    let names: Vec<&str> = all.get_subcommands().map(|c| c.get_name()).collect();
                    why.push_str(&format!("\nthe commands are: {}", names.join(", ")));
                }
                Err(why)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command goes over the wire and comes back the same.
    #[test]
    fn commands_survive_the_wire() {
        let all = [
            Command::Status,
            Command::Lookup {
                names: vec!["a.example".into(), "b.example".into()],
            },
            Command::Reload,
            Command::FlushCache { name: None },
            Command::FlushCache {
                name: Some("example.com".into()),
            },
            Command::Stats,
            Command::TopBlocked { n: 7 },
            Command::ShadowReport {
                n: 3,
                popular: Some("/srv/top.csv".into()),
            },
            Command::ShadowReport {
                n: 20,
                popular: None,
            },
            Command::DumpConfig,
        ];
        for c in all {
            assert_eq!(
                Command::from_request(&c.to_request()),
                Ok(c.clone()),
                "{c:?}"
            );
        }
    }

    #[test]
    fn bad_words_are_refused_with_the_usage() {
        let ask = |cmd: &str, args: &[&str]| {
            Command::from_request(&Request {
                cmd: cmd.into(),
                args: args.iter().map(|a| a.to_string()).collect(),
            })
        };
        let why = ask("frobnicate", &[]).unwrap_err();
        assert!(
            why.contains("the commands are: status, lookup, reload"),
            "{why}"
        );
        assert!(
            ask("lookup", &[])
                .unwrap_err()
                .contains("Usage: fanzha ctl lookup")
        );
        assert!(ask("top-blocked", &["many"]).is_err());
        assert!(ask("status", &["extra"]).is_err());
        assert_eq!(ask("top-blocked", &[]), Ok(Command::TopBlocked { n: 10 }));
    }
}
