//! The command line: every flag and command, and its help text. Each
//! command's doc comment *is* its `--help`, examples included.

use crate::base::exit::EXIT_CODES_HELP;
use clap::{Args, Parser, Subcommand};

/// Sign this terminal into claudemesh, then manage meshes and launch Claude Code in one.
///
/// Start with `claudemesh login`. In CI, set CLAUDEMESH_TOKEN to a personal
/// access token (cm_pat_…) or run `claudemesh login --with-token < token.txt`.
///
/// Then `claudemesh create "Platform team"`, `claudemesh invite --email
/// alice@example.com`, and on Alice's machine `claudemesh join <link>`. The
/// meshes joined on this machine, with its key pair for each, are kept in
/// ~/.claudemesh/config.json.
///
/// Which token a command uses: --token, then CLAUDEMESH_TOKEN, then the login
/// saved in ~/.claudemesh/auth.json.
#[derive(Debug, Parser)]
#[command(
    name = "claudemesh",
    version,
    propagate_version = true,
    after_help = EXIT_CODES_HELP,
    max_term_width = 100,
    allow_external_subcommands = true
)]
pub struct Cli {
    /// Use this token (cm_pat_… or cm_session_…) instead of CLAUDEMESH_TOKEN or the saved login
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,

    /// Print the result as JSON on stdout (messages stay on stderr)
    #[arg(long, global = true)]
    pub json: bool,

    /// The claudemesh server for login and explicit tokens (else CLAUDEMESH_API_URL, else https://claudemesh.com); a saved login always uses its own
    // The variable is read by `Context`, not clap: clap would count it as a
    // flag given and print `--api-url <URL>` in every usage line.
    #[arg(long, global = true, value_name = "URL")]
    pub api_url: Option<String>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Login(LoginArgs),
    Logout(LogoutArgs),
    Whoami(WhoamiArgs),
    Create(CreateArgs),
    List(ListArgs),
    Sync(SyncArgs),
    Invite(InviteArgs),
    Join(JoinArgs),
    Leave(LeaveArgs),
    Peers(PeersArgs),
    Send(SendArgs),
    Inbox(InboxArgs),
    Launch(LaunchArgs),
    #[command(hide = true)]
    Mcp(McpArgs),
    // Permission prompts relayed to their owner (issue 18).
    /// Allow a tool use a launched session of yours asks about (launch --relay-permissions)
    ///
    /// The request reaches your other sessions and machines (`inbox` shows
    /// it, with its five-letter id); the verdict is signed with this
    /// machine's member key and goes to the session that asked, which
    /// checks it. The first answer wins. An unknown id is exit 5; an
    /// expired or already answered request exit 6; the asking session gone,
    /// exit 5.
    ///
    /// Examples:
    ///   claudemesh approve tbxkq
    ///   claudemesh approve tbxkq --mesh platform-team
    #[command(verbatim_doc_comment)]
    Approve(AnswerArgs),
    /// Refuse a tool use a launched session of yours asks about (see `approve`)
    ///
    /// Examples:
    ///   claudemesh deny tbxkq --mesh platform-team
    #[command(verbatim_doc_comment)]
    Deny(AnswerArgs),
    Doctor(DoctorArgs),
    Completions(CompletionsArgs),
    Telemetry(TelemetryArgs),
    // Governance (issue 17).
    Members(MembersArgs),
    Mesh(MeshArgs),
    /// Allow a member to do more to you: dm, group, presence
    ///
    /// Capabilities: dm (send you direct messages), group (reach you with
    /// group and broadcast messages), presence (see your status and
    /// summary). The broker enforces them on every instance within a
    /// second. An unknown capability is exit 3; an unknown member exit 5; a
    /// display name two members share, exit 3 with their ids.
    ///
    /// Examples:
    ///   claudemesh grant Bob dm
    ///   claudemesh grant mem_k3xq9a2bmvjp dm group presence --mesh platform-team
    #[command(verbatim_doc_comment)]
    Grant(GrantArgs),
    /// Take capabilities back from a member: dm, group, presence
    ///
    /// A direct message from them is then refused to them with
    /// `not_permitted`; group and broadcast copies for you are skipped;
    /// without presence they no longer see your status or summary. Their
    /// messages still waiting for you are not delivered.
    ///
    /// Examples:
    ///   claudemesh revoke Bob dm
    ///   claudemesh revoke Bob group presence --mesh platform-team
    #[command(verbatim_doc_comment)]
    Revoke(GrantArgs),
    /// Block a member: revoke every capability (dm, group, presence)
    ///
    /// Examples:
    ///   claudemesh block Bob
    #[command(verbatim_doc_comment)]
    Block(BlockArgs),
    /// Unblock a member: grant every capability again
    ///
    /// Examples:
    ///   claudemesh unblock Bob
    #[command(verbatim_doc_comment)]
    Unblock(BlockArgs),
    /// What you allow each peer, and what each peer allows you
    ///
    /// Examples:
    ///   claudemesh grants
    ///   claudemesh grants --mesh platform-team --json
    #[command(verbatim_doc_comment)]
    Grants(GrantsArgs),
    /// Read and check a mesh's log (who joined, left, connected; which messages went where)
    #[command(subcommand)]
    Log(LogCommand),
    /// Watch a mesh live: presence, status, summaries, your messages, log entries
    #[command(subcommand)]
    Stream(StreamCommand),
    #[command(hide = true)]
    ManPages(ManPagesArgs),
    /// `claudemesh <invite link>`: join that mesh and launch in it.
    #[command(external_subcommand)]
    External(Vec<String>),
}

/// Launch Claude Code in a mesh, as a live member of it
///
/// Signs you in if needed, picks the mesh (the one given, the only one
/// joined here, or asks), and starts Claude Code with a session of its own in
/// the mesh: it sees the other sessions (`list_peers`), sends and receives
/// end-to-end encrypted messages, and peers' messages arrive in the
/// conversation as they come (--message-mode). Claude Code gets the
/// terminal; `launch` exits with its status. Arguments after `--` go to
/// Claude Code. Nothing in ~/.claude.json or Claude Code's settings is
/// changed, and --dangerously-skip-permissions is never added for you.
///
/// Examples:
///   claudemesh launch
///   claudemesh launch platform-team --name "Alex (api)" --role reviewer --groups backend,ops
///   claudemesh launch --join https://claudemesh.com/i/k3xq9a2bmvjp3
///   claudemesh launch --mesh platform-team -y -- "review the open pull requests"
///   claudemesh launch --continue --message-mode inbox
///   claudemesh launch --caps dm,presence      (this session cannot broadcast)
#[derive(Debug, Clone, Args)]
#[command(verbatim_doc_comment)]
pub struct LaunchArgs {
    /// The mesh to launch in (its slug); the same as --mesh
    #[arg(value_name = "SLUG")]
    pub slug: Option<String>,

    /// The mesh to launch in [default: the only one joined here; asks in a terminal]
    #[arg(long, value_name = "SLUG")]
    pub mesh: Option<String>,

    /// Your session's name in the mesh [default: your name in the mesh]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// What this session does, shown to the others (e.g. reviewer) [default: asks in a terminal, else none]
    #[arg(long, value_name = "ROLE")]
    pub role: Option<String>,

    /// Groups this session is in, for messages to @group (comma-separated)
    #[arg(long, value_name = "a,b", value_delimiter = ',')]
    pub groups: Vec<String>,

    /// How peers' messages reach Claude: pushed in full, as a one-line notice, or not at all (check_messages)
    #[arg(long, value_enum, value_name = "MODE", default_value_t = crate::stores::session_dir::MessageMode::Push)]
    pub message_mode: crate::stores::session_dir::MessageMode,

    /// Join the mesh of this invite link first, then launch in it
    #[arg(long, value_name = "URL")]
    pub join: Option<String>,

    /// Resume this Claude Code conversation
    #[arg(long, value_name = "ID", conflicts_with = "continue_")]
    pub resume: Option<String>,

    /// Continue the most recent Claude Code conversation here
    #[arg(long = "continue")]
    pub continue_: bool,

    /// Ask nothing: take the defaults for whatever is not given
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// Least privilege: what this session may do, of dm, group, broadcast, presence, summary (comma-separated) [default: all your rights]
    #[arg(long, value_enum, value_name = "a,b", value_delimiter = ',')]
    pub caps: Vec<RightArg>,

    /// Relay Claude Code's permission prompts to your other sessions and machines, answered with `claudemesh approve`/`deny` [default: the config's relay_permissions setting, else off]
    #[arg(long)]
    pub relay_permissions: bool,

    /// Arguments for Claude Code (after `--`)
    #[arg(last = true, value_name = "CLAUDE-ARGS")]
    pub claude_args: Vec<String>,
}

/// The MCP server that Claude Code starts for `claudemesh launch` (stdio; not for direct use)
#[derive(Debug, Args)]
pub struct McpArgs {
    /// Narrow the launched session's rights further (see `launch --caps`)
    #[arg(long, value_enum, value_name = "a,b", value_delimiter = ',')]
    pub caps: Vec<RightArg>,

    /// Relay Claude Code's permission prompts to the member's other sessions (see `launch --relay-permissions`)
    #[arg(long)]
    pub relay_permissions: bool,
}

/// `approve` and `deny`.
#[derive(Debug, Args)]
pub struct AnswerArgs {
    /// The request's id: five letters, as `inbox` shows it
    #[arg(value_name = "REQUEST_ID")]
    pub request_id: String,

    /// The mesh's slug [default: the one mesh joined on this machine]
    #[arg(long, value_name = "SLUG")]
    pub mesh: Option<String>,
}

/// A right a session may be limited to (`launch --caps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RightArg {
    /// Send direct messages
    #[value(alias = "send_dm")]
    Dm,
    /// Send to groups
    #[value(alias = "send_group")]
    Group,
    /// Send to everyone
    Broadcast,
    /// Set its status
    Presence,
    /// Set its summary
    #[value(alias = "set_summary")]
    Summary,
}

impl RightArg {
    pub fn right(self) -> claudemesh_api::broker::SessionRight {
        use claudemesh_api::broker::SessionRight as R;
        match self {
            Self::Dm => R::SendDm,
            Self::Group => R::SendGroup,
            Self::Broadcast => R::Broadcast,
            Self::Presence => R::Presence,
            Self::Summary => R::SetSummary,
        }
    }

    /// The rights `--caps` gives: `None` when the flag is absent (all).
    pub fn rights(caps: &[RightArg]) -> Option<Vec<claudemesh_api::broker::SessionRight>> {
        if caps.is_empty() {
            return None;
        }
        let mut rights: Vec<_> = caps.iter().map(|c| c.right()).collect();
        rights.sort();
        rights.dedup();
        Some(rights)
    }
}

/// Sign this terminal into your claudemesh account
///
/// With no options, opens the browser to approve this device with a short
/// code (the device-code flow); over SSH or without a display it prints the
/// link and the code for you to open on any device. With --token or
/// --with-token, checks a personal access token with the server instead.
/// Either way the login replaces any earlier one: the token goes to the OS
/// credential store (Keychain, Secret Service, Credential Manager) and the
/// rest to ~/.claudemesh/auth.json (mode 0600); when no store answers within
/// 2 s (headless, CI, SSH), or with --insecure-storage, the token is saved
/// in auth.json too.
///
/// Examples:
///   claudemesh login
///   claudemesh login --no-browser
///   claudemesh login --with-token < token.txt
///   echo "$CLAUDEMESH_PAT" | claudemesh login --with-token --insecure-storage
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct LoginArgs {
    /// Read a personal access token from stdin instead of using the browser
    #[arg(long)]
    pub with_token: bool,

    /// Do not open a browser; just print the link and the code
    #[arg(long)]
    pub no_browser: bool,

    /// How this machine is named on the approval page and in session lists [default: host name]
    #[arg(long, value_name = "NAME")]
    pub device_name: Option<String>,

    /// Save the token in auth.json (mode 0600), not in the OS credential store
    #[arg(long)]
    pub insecure_storage: bool,
}

/// Sign out of this machine
///
/// The token is removed from the OS credential store and auth.json is
/// deleted. A session made by `claudemesh login` is also revoked on the
/// server. A personal access token (cm_pat_…) is not: it may be in use in CI
/// or on other machines, so it keeps working there until you revoke it with
/// --revoke or on the CLI tokens page. If the server cannot be reached, the
/// login here is still removed and a warning says the token stays valid.
/// Not being logged in is not an error (exit 0).
///
/// With --token, revokes that token on the server instead (for a token that
/// leaked), and removes the saved login only if it is that same token.
///
/// Examples:
///   claudemesh logout
///   claudemesh logout --revoke
///   claudemesh logout --token "$LEAKED_TOKEN"
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct LogoutArgs {
    /// Revoke the saved token on the server even when it is a personal access token
    #[arg(long)]
    pub revoke: bool,
}

/// Show who you are signed in as, with which token, on which server
///
/// Prints the account, the server, where the token came from (--token,
/// CLAUDEMESH_TOKEN, or the saved login: the OS credential store or
/// auth.json), its kind and name, when it expires and when it was last used,
/// and warns when it expires within 7 days. Exits 2 when not logged in or the
/// token no longer works.
///
/// Examples:
///   claudemesh whoami
///   claudemesh whoami --sessions
///   claudemesh whoami --json | jq -r .user.email
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct WhoamiArgs {
    /// Also list every CLI session of the account (device, created, last seen)
    #[arg(long)]
    pub sessions: bool,
}

/// Create a mesh and join it on this machine
///
/// Creates the mesh on the server with you as its admin, makes an ed25519
/// key pair for this machine (the public key goes to the server, the secret
/// key stays in ~/.claudemesh/config.json), and records the mesh there.
///
/// The slug, the handle other commands take, is derived from the name unless
/// --slug is given. If it is taken, the error suggests a free one (exit 6).
///
/// Examples:
///   claudemesh create "Platform team"
///   claudemesh create "Platform team" --slug platform --name "Alex (laptop)"
///   claudemesh create "CI run $GITHUB_RUN_ID" --json | jq -r .id
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct CreateArgs {
    /// The mesh's name, as people see it
    pub name: String,

    /// The mesh's handle: 2 to 40 of a-z, 0-9 and - [default: from the name]
    #[arg(long, value_name = "SLUG")]
    pub slug: Option<String>,

    /// Your name in this mesh [default: your account name]
    #[arg(long = "name", value_name = "DISPLAY_NAME")]
    pub display_name: Option<String>,
}

/// List your meshes, and whether each is joined on this machine
///
/// Shows every mesh your account belongs to on the server, with your role
/// and the member count, merged with the meshes recorded in
/// ~/.claudemesh/config.json. Each is "joined here" (this machine has a key
/// for it), "not joined here" (run `claudemesh sync`), or "local only" (this
/// machine has a key, but the server no longer lists the mesh for you: you
/// left or were removed, or it is gone).
///
/// Examples:
///   claudemesh list
///   claudemesh list --json | jq -r '.meshes[] | select(.here == "joined_here") | .slug'
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ListArgs {}

/// Join on this machine every mesh your account is in
///
/// For each mesh the server lists for you that this machine has not joined,
/// makes a key pair, registers its public key with the server and records
/// the mesh in ~/.claudemesh/config.json. Refreshes the records of the
/// others (name, role, display name). Meshes recorded here that the server no
/// longer lists for you are flagged, not deleted: --prune deletes them (and
/// their keys). Running it again changes nothing. `claudemesh login` runs it.
///
/// Examples:
///   claudemesh sync
///   claudemesh sync --prune
///   claudemesh sync --json | jq -r '.added[]'
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct SyncArgs {
    /// Also remove from this machine the meshes you no longer belong to, deleting their keys
    #[arg(long)]
    pub prune: bool,
}

/// Invite someone to a mesh (admins only)
///
/// Creates an invite link and prints it on stdout, so `URL=$(claudemesh
/// invite)` works. With --email, the server also emails the link (in
/// Spanish when LANG or LC_ALL is es_*); if the mail cannot be sent the link
/// still works, and a warning says to share it yourself.
///
/// --mesh may be left out when exactly one mesh is joined on this machine.
///
/// Examples:
///   claudemesh invite --email alice@example.com
///   claudemesh invite --mesh platform-team --role admin --expires-in 2w
///   claudemesh invite --mesh platform-team --max-uses 10 --json | jq -r .url
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct InviteArgs {
    /// The mesh's slug [default: the one mesh joined on this machine]
    #[arg(long, value_name = "SLUG")]
    pub mesh: Option<String>,

    /// Email the invite link to this address
    #[arg(long, value_name = "ADDRESS")]
    pub email: Option<String>,

    /// The role the invitee gets
    #[arg(long, value_enum, default_value_t = RoleArg::Member)]
    pub role: RoleArg,

    /// How long the link works: days or weeks, like 7d or 2w (1d to 365d)
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = parse_expiry)]
    pub expires_in: u32,

    /// How many people can join with the link
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_uses: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    Member,
    Admin,
}

/// Parses `--expires-in`: `Nd` or `Nw`, into whole days (1 to 365).
pub fn parse_expiry(text: &str) -> Result<u32, String> {
    const USAGE: &str = "expected days or weeks, like 7d or 2w (1d to 365d)";
    let text = text.trim().to_ascii_lowercase();
    // Split before the last character (not byte: `7é` must not panic).
    let split = text.char_indices().last().map_or(0, |(at, _)| at);
    let (number, unit) = text.split_at(split);
    let per_unit = match unit {
        "d" => 1,
        "w" => 7,
        _ => return Err(USAGE.to_owned()),
    };
    let days = number
        .parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(per_unit))
        .ok_or_else(|| USAGE.to_owned())?;
    if (1..=365).contains(&days) {
        Ok(days)
    } else {
        Err(USAGE.to_owned())
    }
}

/// Join a mesh with an invite link, on this machine
///
/// Shows what the invite is for (mesh, who invited you, role, expiry),
/// makes a key pair for this machine, joins, and records the mesh in
/// ~/.claudemesh/config.json. An invite that expired, was revoked or is used
/// up is refused with the reason. Joining a mesh this machine has already
/// joined changes nothing.
///
/// Examples:
///   claudemesh join https://claudemesh.com/i/k3xq9a2bmvjp3
///   claudemesh join k3xq9a2bmvjp3 --name "Alice (desktop)"
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct JoinArgs {
    /// The invite link, or just its code
    #[arg(value_name = "INVITE")]
    pub invite: String,

    /// Your name in this mesh [default: your account name]
    #[arg(long = "name", value_name = "DISPLAY_NAME")]
    pub display_name: Option<String>,
}

/// Leave a mesh, on the server and on this machine
///
/// Ends your membership of the mesh and deletes its record and this
/// machine's key from ~/.claudemesh/config.json. Coming back takes a new
/// invite. The mesh's only admin cannot leave: invite another admin first.
/// Asks for confirmation in a terminal; --yes skips it, and is required when
/// there is no terminal to ask in.
///
/// Examples:
///   claudemesh leave platform-team
///   claudemesh leave platform-team --yes
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct LeaveArgs {
    /// The mesh's slug (see `claudemesh list`)
    #[arg(value_name = "SLUG")]
    pub mesh: String,

    /// Leave without asking
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// Show who is connected to a mesh, and which members are offline
///
/// Connects to the mesh's broker for a moment, as a session of this
/// machine's key for the mesh, and prints the other sessions connected (a
/// Claude Code session, a `claudemesh inbox --follow`, …): the name each goes
/// by, its member, role, groups, status, when it connected and its summary.
/// Your own other sessions are marked "(you)". SESSION is the start of the
/// session's key, which `claudemesh send` takes as a target. Below, the
/// members with no session connected: a message sent to one of them waits
/// until one of their sessions connects.
///
/// --mesh may be left out when exactly one mesh is joined on this machine
/// (else exit 3). A mesh not joined on this machine is exit 5 (`claudemesh
/// sync` joins here the meshes your account is in); a membership the broker
/// does not know (any more) is exit 7.
///
/// Examples:
///   claudemesh peers
///   claudemesh peers --mesh platform-team
///   claudemesh peers --json | jq -r '.peers[].display_name'
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct PeersArgs {
    /// The mesh's slug [default: the one mesh joined on this machine]
    #[arg(long, value_name = "SLUG")]
    pub mesh: Option<String>,
}

/// Send a message to a peer, a group or everyone in a mesh
///
/// The message is encrypted on this machine for each recipient's key (end
/// to end: the server relays only ciphertext). TARGET is one of:
///   NAME      a display name: every connected session of that member
///   mem_…     a member id (when several members share a name)
///   3f9a1c2e  a session key, or its first 8 or more characters (see `claudemesh peers`)
///   @GROUP    every connected session in the group
///   '*'       every other connected session
///
/// A member with no session connected gets the message when one connects;
/// the command says so, and it waits for them as long as the broker keeps
/// messages (7 days unless the server says otherwise). MESSAGE `-` reads the
/// message from stdin. The message id goes to stdout.
///
/// Exit codes: an unknown target (or an empty group, or no one else
/// connected for '*') is 5; a name several members share is 3 (use the
/// member id); sending too fast is 1, with when to try again. --mesh works
/// as in `claudemesh peers` (no such mesh joined here: 5).
///
/// Examples:
///   claudemesh send Alice "the migration is done"
///   claudemesh send @reviewers "PR #42 is ready" --priority now
///   claudemesh send '*' "deploying in 5 minutes" --mesh platform-team
///   git log -1 | claudemesh send Bob -
///   ID=$(claudemesh send Alice "ping")
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct SendArgs {
    /// Who to send to: NAME, mem_…, a session key prefix, @GROUP or '*'
    #[arg(value_name = "TARGET")]
    pub target: String,

    /// The text, or - to read it from stdin
    #[arg(value_name = "MESSAGE")]
    pub message: String,

    /// The mesh's slug [default: the one mesh joined on this machine]
    #[arg(long, value_name = "SLUG")]
    pub mesh: Option<String>,

    /// now: delivered even to a busy session; next: once it is idle; low: the same, marked as able to wait
    #[arg(long, value_enum, default_value_t = PriorityArg::Next)]
    pub priority: PriorityArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PriorityArg {
    Now,
    Next,
    Low,
}

/// Read the messages sent to you in a mesh
///
/// Connects to the mesh's broker as a session of this machine's key, and
/// prints, decrypted, every message waiting for you (sent while you had no
/// session connected) and whatever arrives meanwhile: when it was sent, who
/// sent it, to whom (you, a @group, everyone), its priority and its text.
/// Stops once nothing new has come for 1.5 seconds. A message shown is
/// acknowledged: the next `claudemesh inbox` does not show it again.
///
/// With --follow, stays connected and prints each message as it arrives
/// (with --json, one JSON object per line) until Ctrl-C (exit 0) or the
/// connection to the server is lost (exit 4). Sessions that stay (a launched
/// Claude Code, another `inbox --follow`) are shown on stderr as they connect
/// and leave; one-off commands (`peers`, `send`, `inbox`) only with
/// --verbose, and your own never. --mesh works as in `claudemesh peers` (no
/// such mesh joined here: 5).
///
/// Examples:
///   claudemesh inbox
///   claudemesh inbox --mesh platform-team --json | jq -r '.messages[].text'
///   claudemesh inbox --follow
///   claudemesh inbox --follow --json | jq --unbuffered -r .text
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct InboxArgs {
    /// The mesh's slug [default: the one mesh joined on this machine]
    #[arg(long, value_name = "SLUG")]
    pub mesh: Option<String>,

    /// Stay connected and print messages as they arrive, until Ctrl-C
    #[arg(long, short = 'f')]
    pub follow: bool,

    /// With --follow, also show other members' one-off commands (peers, send, inbox) connecting and leaving
    #[arg(long, short = 'v', requires = "follow")]
    pub verbose: bool,
}

/// Check that everything claudemesh needs works, and say how to fix what does not
///
/// One line a check: the server (reachable, its version, this machine's
/// clock against its), the token (valid, where it comes from, when it
/// expires: a warning within 7 days), the meshes (joined here against the
/// account's on the server), each joined mesh's broker (a handshake and how
/// long it took), Claude Code (found, new enough for channels: 2.1.80 or
/// later), and `claudemesh mcp` answering `initialize` with the channel
/// capability. ✔ passed, ⚠ needs attention soon, ✘ failed (with the fix on
/// the next line), - not checked because something it needs failed.
///
/// Exits 0 only when no check failed; 1 otherwise. Each check is bounded in
/// time: with the server down the report comes within a few seconds.
///
/// Examples:
///   claudemesh doctor
///   claudemesh doctor --json | jq '.checks[] | select(.status == "fail")'
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct DoctorArgs {}

/// Turn usage telemetry on or off, or see what it holds
///
/// claudemesh records which command ran (its name only), how long it took
/// and its exit code; logins and logouts (the method, your account's id,
/// why a login failed); the API errors met (the route, never the URL); with
/// a random install id, the CLI's version, the OS and the architecture.
/// Never a token, an email, a file path, a mesh name, a message or an
/// argument. Events go only to the claudemesh server you are signed in to,
/// in the background; a command never waits more than 300 ms for them.
/// docs/telemetry.md lists every field.
///
/// Off means nothing is recorded or sent; turning it off deletes the events
/// not sent yet. CLAUDEMESH_TELEMETRY=0 or DO_NOT_TRACK=1 turn it off too,
/// whatever was set here.
///
/// Examples:
///   claudemesh telemetry
///   claudemesh telemetry off
///   claudemesh telemetry status --json
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct TelemetryArgs {
    /// on, off, or status (what is set, the install id, the events waiting)
    #[arg(value_enum, default_value_t = TelemetryAction::Status)]
    pub action: TelemetryAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TelemetryAction {
    On,
    Off,
    Status,
}

/// Print a shell completion script
///
/// Examples:
///   claudemesh completions bash > ~/.local/share/bash-completion/completions/claudemesh
///   claudemesh completions zsh > "${fpath[1]}/_claudemesh"
///   claudemesh completions fish > ~/.config/fish/completions/claudemesh.fish
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

// ------------------------------------------------------------ the mesh log

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    Tail(LogTailArgs),
    Verify(LogVerifyArgs),
}

/// Print a mesh's latest log entries, and with --follow the new ones as they happen
///
/// The mesh log records who joined, left or was removed, invites made,
/// accepted and revoked, sessions connecting and disconnecting, and each
/// message's metadata (sender, kind, recipient count, size; never its
/// text). Each entry carries the hash of the one before; `claudemesh log
/// verify` checks them. --follow prints each new entry within a second of
/// the event, until Ctrl-C (exit 0); a broken connection is resumed from
/// the last entry printed, without gaps or repeats.
///
/// Exit codes: 3 for a malformed --since or an unknown --kind, 5 for a mesh
/// not joined here or not yours, 4 when the server cannot be reached.
///
/// Examples:
///   claudemesh log tail
///   claudemesh log tail --mesh platform-team --follow
///   claudemesh log tail --since 2h --kind member.joined
///   claudemesh log tail --since 2026-12-01T00:00:00Z --json | jq -r .kind
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct LogTailArgs {
    /// The mesh's slug [default: the one mesh joined on this machine]
    #[arg(long, value_name = "SLUG")]
    pub mesh: Option<String>,

    /// Keep printing new entries as they happen, until Ctrl-C
    #[arg(long, short = 'f')]
    pub follow: bool,

    /// Entries since a time: a duration back from now (90s, 15m, 2h, 7d) or an RFC 3339 time
    #[arg(long, value_name = "DURATION|TIME")]
    pub since: Option<String>,

    /// Only entries of this kind (member.joined, member.left, member.removed, invite.created, invite.accepted, invite.revoked, session.connected, session.disconnected, message.sent, member.role_changed, mesh.renamed, mesh.archived, mesh.unarchived, grants.changed)
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,

    /// How many of the newest entries to print (1 to 500)
    #[arg(long, short = 'n', default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub lines: u32,
}

// ------------------------------------------------------ stream subscribe

#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    Subscribe(StreamSubscribeArgs),
}

/// Print what happens in a mesh as it happens, one line an event
///
/// For scripts and dashboards: sessions joining and leaving (and those
/// present at the start), status and summary changes, messages addressed
/// to you (opened on this machine, as `inbox --follow` does), and mesh log
/// entries. With --json, one JSON object a line: {event, mesh, at, …}.
///
/// It connects to the broker as an observer: it is not in `peers`, in
/// Claude's list_peers or in any count, it sends nothing, and it leaves
/// your messages for your own sessions (it does not acknowledge them).
/// Runs until Ctrl-C or SIGTERM, or until stdout is closed
/// (`| head -3`): all exit 0.
///
/// Exit codes: 3 for an unknown --events name, 5 for a mesh not joined
/// here, 7 for a membership the broker refuses, 4 when the server cannot be
/// reached or the connection is lost.
///
/// Examples:
///   claudemesh stream subscribe
///   claudemesh stream subscribe --events presence,status --mesh platform-team
///   claudemesh stream subscribe --json | jq --unbuffered 'select(.event == "messages") | .message.text'
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct StreamSubscribeArgs {
    /// The mesh's slug [default: the one mesh joined on this machine]
    #[arg(long, value_name = "SLUG")]
    pub mesh: Option<String>,

    /// Which events, separated by commas: presence, status, summary, messages, log [default: all]
    #[arg(long, value_name = "EVENTS")]
    pub events: Option<String>,
}

/// Check that no entry of a mesh's log was edited or deleted
///
/// Downloads the whole log and checks its hash chain on this machine: each
/// entry's hash over its content and the hash of the one before, positions
/// without gaps, and the last entry against the head the server records.
/// Names the first broken entry. Exits 0 when the chain holds, 1 when it
/// is broken.
///
/// Examples:
///   claudemesh log verify
///   claudemesh log verify --mesh platform-team --json
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct LogVerifyArgs {
    /// The mesh's slug [default: the one mesh joined on this machine]
    #[arg(long, value_name = "SLUG")]
    pub mesh: Option<String>,
}

/// Write a man page for every command into DIR (claudemesh.1, claudemesh-login.1, …)
///
/// Examples:
///   claudemesh man-pages ~/.local/share/man/man1
///   sudo claudemesh man-pages /usr/local/share/man/man1
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ManPagesArgs {
    /// The directory to write them to (made if missing)
    #[arg(value_name = "DIR")]
    pub dir: std::path::PathBuf,
}

/// The command a mistyped one most likely meant (`peer` → `peers`), as
/// clap suggests for flags: a prefix, or at most two edits away.
pub fn closest_command(word: &str) -> Option<String> {
    use clap::CommandFactory;
    let word = word.to_ascii_lowercase();
    Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_owned())
        .map(|name| (edit_distance(&word, &name), name))
        .filter(|(distance, name)| {
            *distance <= 2.min(name.len() / 2) || (word.len() >= 3 && name.starts_with(&word))
        })
        .min()
        .map(|(_, name)| name)
}

/// Edit distance by characters, a swap of two neighbours counting as one
/// edit (`lgoin` is one from `login`): optimal string alignment.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mistyped_command_suggests_the_closest_one() {
        assert_eq!(closest_command("peer").as_deref(), Some("peers"));
        assert_eq!(closest_command("lgoin").as_deref(), Some("login"));
        assert_eq!(closest_command("laun").as_deref(), Some("launch"));
        assert_eq!(closest_command("Whoami").as_deref(), Some("whoami"));
        assert_eq!(closest_command("deploy"), None);
        // Hidden commands are never suggested.
        assert_eq!(closest_command("mcpp"), None);
    }
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_before_and_after_the_command() {
        let before =
            Cli::try_parse_from(["claudemesh", "--json", "--token", "t", "whoami"]).unwrap();
        let after =
            Cli::try_parse_from(["claudemesh", "whoami", "--json", "--token", "t"]).unwrap();
        for cli in [before, after] {
            assert!(cli.json);
            assert_eq!(cli.token.as_deref(), Some("t"));
            assert!(matches!(cli.command, Some(Command::Whoami(_))));
        }
    }

    #[test]
    fn expiry_is_days_or_weeks_within_a_year() {
        assert_eq!(parse_expiry("7d"), Ok(7));
        assert_eq!(parse_expiry(" 2W "), Ok(14));
        assert_eq!(parse_expiry("365d"), Ok(365));
        assert_eq!(parse_expiry("52w"), Ok(364));
        for bad in [
            "",
            "d",
            "7",
            "24h",
            "0d",
            "366d",
            "53w",
            "-1d",
            "1.5d",
            "7 d",
            "9999999999w",
            "7dd",
        ] {
            let err = parse_expiry(bad).unwrap_err();
            assert!(err.contains("like 7d or 2w"), "{bad}: {err}");
        }
    }

    #[test]
    fn mesh_commands_parse() {
        let cli = Cli::try_parse_from([
            "claudemesh",
            "create",
            "Platform team",
            "--slug",
            "pt",
            "--name",
            "Alex",
        ])
        .unwrap();
        match cli.command {
            Some(Command::Create(args)) => {
                assert_eq!(args.name, "Platform team");
                assert_eq!(args.slug.as_deref(), Some("pt"));
                assert_eq!(args.display_name.as_deref(), Some("Alex"));
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["claudemesh", "invite", "--json"]).unwrap();
        match cli.command {
            Some(Command::Invite(args)) => {
                assert_eq!(args.expires_in, 7);
                assert_eq!(args.max_uses, 1);
                assert_eq!(args.role, RoleArg::Member);
                assert!(args.mesh.is_none());
            }
            other => panic!("{other:?}"),
        }
        for bad in [
            vec!["claudemesh", "invite", "--expires-in", "24h"],
            vec!["claudemesh", "invite", "--max-uses", "0"],
            vec!["claudemesh", "invite", "--role", "owner"],
            vec!["claudemesh", "join"],
            vec!["claudemesh", "leave"],
        ] {
            assert!(Cli::try_parse_from(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn message_commands_parse() {
        let cli =
            Cli::try_parse_from(["claudemesh", "send", "@ops", "-", "--priority", "now"]).unwrap();
        match cli.command {
            Some(Command::Send(args)) => {
                assert_eq!(args.target, "@ops");
                assert_eq!(args.message, "-");
                assert_eq!(args.priority, PriorityArg::Now);
                assert!(args.mesh.is_none());
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["claudemesh", "send", "Alice", "hi", "--json"]).unwrap();
        assert!(cli.json, "a flag after the message is still a flag");
        match cli.command {
            Some(Command::Send(args)) => assert_eq!(args.priority, PriorityArg::Next),
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["claudemesh", "inbox", "-f", "--mesh", "dev"]).unwrap();
        match cli.command {
            Some(Command::Inbox(args)) => {
                assert!(args.follow);
                assert_eq!(args.mesh.as_deref(), Some("dev"));
            }
            other => panic!("{other:?}"),
        }
        for bad in [
            vec!["claudemesh", "send", "Alice"],
            vec!["claudemesh", "send", "Alice", "hi", "--priority", "urgent"],
            vec!["claudemesh", "peers", "extra"],
        ] {
            assert!(Cli::try_parse_from(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn help_lists_the_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Exit codes:"));
        assert!(help.contains("2  authentication"));
    }
}

// ------------------------------------------------------------- governance

/// Who is in a mesh: list members, add one by email, remove, change roles
///
/// Bare `claudemesh members` lists them: display name, role, when they
/// joined and were last seen, sessions connected now, machine keys, and
/// the pending invites (who invited, when they expire). add, remove and
/// role are for the mesh's admins (else exit 7). A member is named by
/// display name or by id (mem_…); a name two members share is exit 3, with
/// their ids. The mesh's only admin can be neither removed nor demoted
/// (exit 6).
///
/// --mesh may be left out when exactly one mesh is joined on this machine.
///
/// Examples:
///   claudemesh members
///   claudemesh members add alice@example.com --role admin
///   claudemesh members role Alice member --mesh platform-team
///   claudemesh members remove mem_k3xq9a2bmvjp --yes
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct MembersArgs {
    #[command(subcommand)]
    pub action: Option<MembersAction>,

    /// The mesh's slug [default: the one mesh joined on this machine]
    #[arg(long, value_name = "SLUG", global = true)]
    pub mesh: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum MembersAction {
    /// List members and pending invites (the default)
    List,
    /// Invite a person by email: the same invite and mail as `invite --email`
    Add {
        /// Their email address
        #[arg(value_name = "EMAIL")]
        email: String,
        /// The role they get
        #[arg(long, value_enum, default_value_t = RoleArg::Member)]
        role: RoleArg,
    },
    /// Remove a member (asks first; --yes without a terminal)
    Remove {
        /// Display name or member id
        #[arg(value_name = "NAME|ID")]
        member: String,
        /// Remove without asking
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Change a member's role
    Role {
        /// Display name or member id
        #[arg(value_name = "NAME|ID")]
        member: String,
        /// The new role
        #[arg(value_enum, value_name = "ROLE")]
        role: RoleArg,
    },
}

/// Rename, archive, unarchive or delete a mesh (admins only)
///
/// archive: the broker refuses new sessions and closes live ones, invites
/// stop working, `claudemesh list` shows it as archived; messages stay
/// until they expire. Archiving twice is fine. unarchive undoes it.
/// delete removes the mesh and everything in it for good and frees its
/// slug: in a terminal it asks you to type the slug; --yes skips that and
/// is required without a terminal (else exit 3).
///
/// --mesh may be left out when exactly one mesh is joined on this machine.
///
/// Examples:
///   claudemesh mesh rename "Platform team (2027)"
///   claudemesh mesh archive --mesh platform-team
///   claudemesh mesh delete --mesh old-team --yes
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct MeshArgs {
    #[command(subcommand)]
    pub action: MeshAction,

    /// The mesh's slug [default: the one mesh joined on this machine]
    #[arg(long, value_name = "SLUG", global = true)]
    pub mesh: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum MeshAction {
    /// Give the mesh a new name (its slug stays)
    Rename {
        /// The new name (1 to 100 characters)
        #[arg(value_name = "NEW-NAME")]
        name: String,
    },
    /// Archive the mesh: no sessions, no joining, until unarchived
    Archive,
    /// Make an archived mesh live again
    Unarchive,
    /// Delete the mesh and everything in it, for good
    Delete {
        /// Delete without asking for the slug
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CapArg {
    /// Send you direct messages
    Dm,
    /// Reach you with group and broadcast messages
    Group,
    /// See your status and summary
    Presence,
    /// Answer your launched sessions' permission prompts (`launch
    /// --relay-permissions`); never granted unless you say so
    Approve,
}

#[derive(Debug, Args)]
pub struct GrantArgs {
    /// The member: display name or id (mem_…)
    #[arg(value_name = "MEMBER")]
    pub member: String,

    /// One or more of dm, group, presence, approve
    #[arg(value_enum, value_name = "CAP", required = true, num_args = 1..)]
    pub caps: Vec<CapArg>,

    /// The mesh's slug [default: the one mesh joined on this machine]
    #[arg(long, value_name = "SLUG")]
    pub mesh: Option<String>,
}

#[derive(Debug, Args)]
pub struct BlockArgs {
    /// The member: display name or id (mem_…)
    #[arg(value_name = "MEMBER")]
    pub member: String,

    /// The mesh's slug [default: the one mesh joined on this machine]
    #[arg(long, value_name = "SLUG")]
    pub mesh: Option<String>,
}

#[derive(Debug, Args)]
pub struct GrantsArgs {
    /// The mesh's slug [default: the one mesh joined on this machine]
    #[arg(long, value_name = "SLUG")]
    pub mesh: Option<String>,
}
