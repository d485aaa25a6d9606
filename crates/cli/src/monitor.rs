//! `esp-llm monitor [-p PORT]`: the raw serial view (what the board prints, what you type).

use crate::port;
use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub link: port::PortArgs,
}

pub fn main(a: Args) -> Result<()> {
    let (link, name) = a.link.open()?;
    port::watch(link, &name)
}
