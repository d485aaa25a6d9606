//! `esp-llm monitor --port PORT`: the raw serial view (what the board prints, what you type).

use crate::link;
use anyhow::Result;
use std::io::{Read, Write};
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub link: link::PortArgs,
}

pub fn main(a: Args) -> Result<()> {
    let mut link = a.link.open()?;
    link.set_read_timeout(Duration::from_millis(100))?;
    let mut writer = link.try_clone_link()?;
    eprintln!("monitoring {} (Ctrl-C quits; lines you type are sent)", a.link.port);
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        let mut stdin = std::io::stdin();
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || writer.write_all(&buf[..n]).is_err() {
                break;
            }
            let _ = writer.flush();
        }
    });
    let mut out = std::io::stdout();
    let mut buf = [0u8; 4096];
    loop {
        match link.read(&mut buf) {
            Ok(0) => anyhow::bail!("{} closed the connection", a.link.port),
            Ok(n) => {
                out.write_all(&buf[..n])?;
                out.flush()?;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) => {}
            Err(e) => return Err(e.into()),
        }
    }
}
