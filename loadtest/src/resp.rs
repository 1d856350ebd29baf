//! A minimal Redis client: RESP2 commands over one TCP connection, one request at a time.
//! The load generator needs only `SCRIPT LOAD` and `EVALSHA`; speaking RESP here keeps the
//! `redis` crate's URL/IDNA stack (some forty crates) out of the build (docs/decisions/0017).

use anyhow::{Context, bail};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A reply, as far as the load generator reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK` and other simple strings.
    Status(String),
    /// `:N`.
    Integer(i64),
    /// `$N` bulk strings; `None` for the null bulk string.
    Bulk(Option<Vec<u8>>),
    /// `*N` arrays (nested replies).
    Array(Vec<Reply>),
}

/// One connection to a Redis server.
pub struct Connection {
    stream: BufReader<TcpStream>,
    out: Vec<u8>,
}

impl Connection {
    /// Connects to `addr` (`host:port`).
    pub async fn connect(addr: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to Redis at {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(stream),
            out: Vec::with_capacity(256),
        })
    }

    /// Sends one command and reads its reply; a Redis error reply is an `Err`.
    pub async fn call(&mut self, args: &[&[u8]]) -> anyhow::Result<Reply> {
        self.out.clear();
        self.out
            .extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in args {
            self.out
                .extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            self.out.extend_from_slice(arg);
            self.out.extend_from_slice(b"\r\n");
        }
        self.stream.get_mut().write_all(&self.out).await?;
        read_reply(&mut self.stream).await
    }
}

async fn read_line<R: AsyncBufRead + Unpin>(stream: &mut R) -> anyhow::Result<String> {
    let mut line = String::new();
    if stream.read_line(&mut line).await? == 0 {
        bail!("Redis closed the connection");
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Reads one reply (boxed: arrays nest).
fn read_reply<R: AsyncBufRead + Unpin + Send>(
    stream: &mut R,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<Reply>> + Send + '_>> {
    Box::pin(async move {
        let line = read_line(stream).await?;
        let (kind, rest) = line.split_at(line.len().min(1));
        match kind {
            "+" => Ok(Reply::Status(rest.to_string())),
            "-" => bail!("Redis error: {rest}"),
            ":" => Ok(Reply::Integer(rest.parse().context("bad integer reply")?)),
            "$" => {
                let len: i64 = rest.parse().context("bad bulk length")?;
                if len < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let mut data = vec![0; len as usize + 2];
                stream.read_exact(&mut data).await?;
                data.truncate(len as usize);
                Ok(Reply::Bulk(Some(data)))
            }
            "*" => {
                let len: i64 = rest.parse().context("bad array length")?;
                let mut items = Vec::with_capacity(len.max(0) as usize);
                for _ in 0..len.max(0) {
                    items.push(read_reply(stream).await?);
                }
                Ok(Reply::Array(items))
            }
            _ => bail!("unreadable Redis reply {line:?}"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> anyhow::Result<Reply> {
        read_reply(&mut BufReader::new(bytes)).await
    }

    #[tokio::test]
    async fn replies_of_every_kind_are_read() {
        assert_eq!(parse(b"+OK\r\n").await.unwrap(), Reply::Status("OK".into()));
        assert_eq!(parse(b":-1\r\n").await.unwrap(), Reply::Integer(-1));
        assert_eq!(
            parse(b"$5\r\nab\r\nc\r\n").await.unwrap(),
            Reply::Bulk(Some(b"ab\r\nc".to_vec()))
        );
        assert_eq!(parse(b"$-1\r\n").await.unwrap(), Reply::Bulk(None));
        assert_eq!(
            parse(b"*2\r\n:1\r\n*1\r\n+x\r\n").await.unwrap(),
            Reply::Array(vec![
                Reply::Integer(1),
                Reply::Array(vec![Reply::Status("x".into())])
            ])
        );
        let error = parse(b"-NOSCRIPT No matching script\r\n")
            .await
            .unwrap_err();
        assert!(error.to_string().contains("NOSCRIPT"));
        assert!(parse(b"?what\r\n").await.is_err());
        assert!(parse(b"").await.is_err());
    }
}
