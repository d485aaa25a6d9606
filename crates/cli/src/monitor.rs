//! `esp-llm monitor [-p PORT]`: the raw serial view (what the board prints, what you type).

use crate::port::{self, Link};
use anyhow::Result;
use std::io::{Read, Write};
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub link: port::PortArgs,
}

pub fn main(a: Args) -> Result<()> {
    let (link, name) = a.link.open()?;
    watch(link, &name)
}

/// Shows what `link` receives and sends what is typed, until the link closes or Ctrl-C.
pub fn watch(mut link: Box<dyn Link>, name: &str) -> Result<()> {
    link.set_read_timeout(Duration::from_millis(100))?;
    let mut writer = link.try_clone_link()?;
    eprintln!("monitoring {name} (Ctrl-C quits; lines you type are sent)");
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
            Ok(0) => anyhow::bail!("{name} closed the connection"),
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
