//! `lockplane completions SHELL`: the completion script for bash, zsh, fish, elvish or
//! PowerShell, generated from the command definitions (clap_complete), so it always
//! matches this binary.

use clap::Args;
use clap_complete::Shell;

/// Flags of `lockplane completions`.
#[derive(Debug, Args)]
#[command(after_help = "Install, for example:\n  \
    bash: lockplane completions bash > /etc/bash_completion.d/lockplane\n  \
    zsh:  lockplane completions zsh > \"${fpath[1]}/_lockplane\"\n  \
    fish: lockplane completions fish > ~/.config/fish/completions/lockplane.fish")]
pub struct CompletionsArgs {
    /// The shell.
    shell: Shell,
}

/// Prints the script for the chosen shell to standard output.
pub fn run(args: &CompletionsArgs, mut command: clap::Command) -> anyhow::Result<()> {
    clap_complete::generate(
        args.shell,
        &mut command,
        "lockplane",
        &mut std::io::stdout(),
    );
    Ok(())
}
