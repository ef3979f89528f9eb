//! `tracer node-agent --listen ADDR`: a node's standing agent, as the DaemonSet of
//! `tracer deploy` runs it. It attaches nothing while idle. A reader (`tracer follow
//! --agents`, through `pods/portforward`) connects and sends one line, the request:
//! `{"follow": [FROM, TO, options…]}` in `tracer agent`'s own syntax. The agent then runs
//! that session on its node and streams it to the reader, exactly as `tracer agent
//! --listen` does, until the reader goes; then it waits for the next. One reader at a
//! time: a second waits in the listen queue.

use std::{
    io::{BufRead, BufReader},
    net::{TcpListener, TcpStream},
    time::Duration,
};

use clap::Parser;

use super::{command, install_stop_handlers, stop_requested};
use crate::cli::{FollowArgs, NodeAgentArgs};

/// How long a reader may take to send its request once connected.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request line.
const MAX_REQUEST: u64 = 64 * 1024;

/// The request, parsed as `tracer agent`'s arguments are.
#[derive(Debug, Parser)]
#[command(name = "agent")]
struct Request {
    #[command(flatten)]
    follow: FollowArgs,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct RequestLine {
    follow: Vec<String>,
}

/// The line a reader sends to ask for a session.
pub fn request_line(follow: Vec<String>) -> String {
    let mut line = serde_json::to_string(&RequestLine { follow }).unwrap_or_default();
    line.push('\n');
    line
}

/// What the reader asked, scoped to this agent's node; what a reader cannot decide here
/// (where to record, which API, showing journeys) is refused.
fn read_request(stream: &TcpStream, agent: &NodeAgentArgs) -> anyhow::Result<FollowArgs> {
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new(std::io::Read::take(stream, MAX_REQUEST)).read_line(&mut line)?;
    let RequestLine { follow } =
        serde_json::from_str(&line).map_err(|e| anyhow::anyhow!("not a request ({e})"))?;
    let Request { follow: mut args } =
        Request::try_parse_from(std::iter::once("agent".to_owned()).chain(follow))
            .map_err(|e| anyhow::anyhow!("{}", e.to_string().lines().next().unwrap_or("")))?;
    let refused = [
        ("--record", args.record.is_some()),
        ("--output", args.output.is_some()),
        ("--count", args.count.is_some()),
        ("--flows", args.flows),
        ("--agent", !args.agents.is_empty()),
        ("--agents", args.agent_pods),
        ("--kubeconfig", args.kubeconfig.is_some()),
        ("--context", args.context.is_some()),
        ("--cluster-file", args.cluster_file.is_some()),
        ("--node", args.node.is_some()),
        ("--netns-prefix", args.netns_prefix.is_some()),
    ];
    if let Some((flag, _)) = refused.iter().find(|(_, given)| *given) {
        anyhow::bail!("{flag} is the node agent's to decide, not a reader's");
    }
    args.node.clone_from(&agent.node);
    args.netns_prefix.clone_from(&agent.netns_prefix);
    Ok(args)
}

/// Whether the reader still has its end open (a closed one reads as EOF).
fn reader_still_there(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let mut byte = [0u8; 1];
    let open = match stream.peek(&mut byte) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).is_ok() && open
}

pub fn serve(agent: &NodeAgentArgs) -> anyhow::Result<i32> {
    let listener = TcpListener::bind(agent.listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", agent.listen))?;
    let address = listener.local_addr()?;
    install_stop_handlers();
    listener.set_nonblocking(true)?;
    loop {
        eprintln!("node agent: waiting for a reader on {address} (tracer follow --agents)");
        let (stream, peer) = loop {
            match listener.accept() {
                Ok(accepted) => break accepted,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if stop_requested() {
                        return Ok(crate::exit::SUCCESS);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(anyhow::anyhow!("cannot accept on {address}: {e}")),
            }
        };
        stream.set_nonblocking(false)?;
        match read_request(&stream, agent) {
            // A reader that gave up while it waited in the queue is not attached for.
            Ok(_) if !reader_still_there(&stream) => {
                eprintln!("node agent: reader {peer} went before it was served");
            }
            Ok(args) => {
                eprintln!(
                    "node agent: reader {peer} follows {} → {}",
                    args.from, args.to
                );
                if let Err(e) = command::agent_for_reader(args, &stream) {
                    eprintln!("node agent: the session for {peer} failed: {e:#}");
                }
            }
            Err(e) => eprintln!("node agent: reader {peer} refused: {e:#}"),
        }
        drop(stream);
        if stop_requested() {
            return Ok(crate::exit::SUCCESS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(follow: &[&str]) -> anyhow::Result<FollowArgs> {
        let agent = NodeAgentArgs {
            listen: "127.0.0.1:0".parse().unwrap(),
            node: Some("cpu1".to_owned()),
            netns_prefix: None,
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let line = request_line(follow.iter().map(|s| (*s).to_owned()).collect());
        std::io::Write::write_all(&mut client, line.as_bytes()).unwrap();
        let (server, _) = listener.accept().unwrap();
        read_request(&server, &agent)
    }

    #[test]
    fn a_request_is_follow_scoped_to_the_agents_node() {
        let args = parsed(&["nettest", "svc/nginx-test", "-n", "default", "--port", "80"]).unwrap();
        assert_eq!(
            (args.from.as_str(), args.to.as_str()),
            ("nettest", "svc/nginx-test")
        );
        assert_eq!(args.port, Some(80));
        assert_eq!(args.node.as_deref(), Some("cpu1"));
    }

    #[test]
    fn what_the_agent_decides_is_refused() {
        for flag in [
            &["--record", "/tmp/x"][..],
            &["--node", "gpu1"],
            &["--kubeconfig", "/k"],
        ] {
            let mut request = vec!["a", "b"];
            request.extend(flag);
            let error = parsed(&request).unwrap_err().to_string();
            assert!(error.contains(flag[0]), "{error}");
        }
        assert!(parsed(&["only-one"]).is_err());
    }
}
