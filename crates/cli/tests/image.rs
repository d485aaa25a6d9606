//! `esp-llm image` parsed back, and `esp-llm flash` refusing what cannot work before it touches
//! a port. The firmware here is a minimal hand-built RISC-V ELF (one flash-mapped code section);
//! CI also runs `image` on the real esp32c3 firmware.

use assert_cmd::Command;
use esp_llm_engine::checkpoint::bundle;
use esp_llm_fixtures::*;
use std::path::Path;

/// An ELF32 RISC-V executable with one `.text` section mapped at `addr` (flash window).
fn tiny_elf(addr: u32, code: &[u8]) -> Vec<u8> {
    let shstrtab = b"\0.text\0.shstrtab\0";
    let text_off = 52u32;
    let str_off = text_off + code.len() as u32;
    let sh_off = (str_off + shstrtab.len() as u32).div_ceil(4) * 4;
    let mut e = Vec::new();
    e.extend_from_slice(b"\x7fELF\x01\x01\x01\0\0\0\0\0\0\0\0\0"); // 32-bit, little-endian
    e.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    e.extend_from_slice(&243u16.to_le_bytes()); // EM_RISCV
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&addr.to_le_bytes()); // entry
    e.extend_from_slice(&0u32.to_le_bytes()); // no program headers
    e.extend_from_slice(&sh_off.to_le_bytes());
    e.extend_from_slice(&0u32.to_le_bytes()); // flags
    for v in [52u16, 32, 0, 40, 3, 2] {
        e.extend_from_slice(&v.to_le_bytes());
    }
    e.extend_from_slice(code);
    e.extend_from_slice(shstrtab);
    e.resize(sh_off as usize, 0);
    let section = |name: u32, ty: u32, flags: u32, addr: u32, off: u32, size: u32| {
        [name, ty, flags, addr, off, size, 0, 0, 4, 0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>()
    };
    e.extend(section(0, 0, 0, 0, 0, 0));
    e.extend(section(1, 1, 0x6, addr, text_off, code.len() as u32)); // PROGBITS, ALLOC|EXEC
    e.extend(section(7, 3, 0, 0, str_off, shstrtab.len() as u32)); // STRTAB
    e
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn merged_image_has_the_bundle_where_the_table_says() {
    let dir = tempfile::tempdir().unwrap();
    let elf =
        write(dir.path(), "fw.elf", &tiny_elf(0x4200_0020, &[0x6f, 0x00, 0x00, 0x00].repeat(64)));
    let out = dir.path().join("flash.bin");
    let o = Command::cargo_bin("esp-llm")
        .unwrap()
        .args(["image", "--chip", "esp32c3", "--firmware"])
        .arg(&elf)
        .arg("--model")
        .arg(shared("models").join("stories260K_q80.bin"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let img = std::fs::read(&out).unwrap();
    assert_eq!(img.len(), 4 << 20);
    // ESP-IDF puts the bootloader at 0 on the C3 and the partition table at 0x8000.
    assert_eq!(img[0], 0xE9, "bootloader image magic");
    let table = esp_idf_part::PartitionTable::try_from_bytes(&img[0x8000..0x9000]).unwrap();
    let model = table.find("model").expect("model partition");
    let app = table.find("factory").expect("app partition");
    assert_eq!(img[app.offset() as usize], 0xE9, "app image magic");
    let at = model.offset() as usize;
    let len = u64::from_le_bytes(img[at + 72..at + 80].try_into().unwrap()) as usize;
    assert!(len <= model.size() as usize);
    let b = &img[at..at + len];
    bundle::verify(b).unwrap();
    assert_eq!(bundle::Bundle::parse(b).unwrap().checkpoint.config.dim, 64);
}

#[test]
fn flash_refuses_before_touching_the_port() {
    let dir = tempfile::tempdir().unwrap();
    // Garbage is refused as a model before the port is opened.
    let big = write(dir.path(), "big.ellb", &vec![0u8; 5 << 20]);
    let o = Command::cargo_bin("esp-llm")
        .unwrap()
        .args(["flash", "--port", "/dev/ttyNOPE0", "--chip", "esp32c3", "--model"])
        .arg(&big)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not a llama2.c checkpoint or esp-llm bundle"), "{err}");
    let o = Command::cargo_bin("esp-llm")
        .unwrap()
        .args(["flash", "--port", "/dev/ttyNOPE0", "--chip", "esp32c3", "--model"])
        .arg(shared("models").join("stories260K.bin"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    // The model fits and plans fine, so the port is what fails, with advice.
    assert!(err.contains("cannot open serial port /dev/ttyNOPE0"), "{err}");
    let o = Command::cargo_bin("esp-llm")
        .unwrap()
        .args(["flash", "--port", "/dev/ttyNOPE0", "--chip", "esp32c3", "--flash-size", "4mb", "--partition-table"])
        .arg(write(dir.path(), "t.csv", b"nvs, data, nvs, 0x9000, 0x6000,\nfactory, app, factory, 0x10000, 0xF0000,\nmodel, data, undefined, 0x100000, 0x10000,\n"))
        .arg("--model")
        .arg(shared("models").join("stories260K.bin"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("partition holds 65536 bytes"), "{err}");
    let o = Command::cargo_bin("esp-llm")
        .unwrap()
        .args(["flash", "--port", "x", "--chip", "esp32c3"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing to write"));
    let o = Command::cargo_bin("esp-llm")
        .unwrap()
        .args(["flash", "--port", "x", "--chip", "esp8266", "--model"])
        .arg(shared("models").join("stories260K.bin"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown chip 'esp8266'"));
}
