fn main() {
    let mut loaded = match enforcer::programs::load() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}: {:?}", std::error::Error::source(&e));
            std::process::exit(1)
        }
    };
    let text = std::fs::read_to_string(std::env::args().nth(1).unwrap()).unwrap();
    let policy = enforcer::policy::parse(&[enforcer::policy::Source {
        name: "p".into(),
        text,
    }])
    .unwrap();
    let c = enforcer::compile::compile(&policy).unwrap();
    let t = std::time::Instant::now();
    loaded.generation.install(&c.image, 1).unwrap();
    eprintln!("installed {} words in {:?}", c.image.len(), t.elapsed());
    loaded
        .programs
        .attach(std::path::Path::new(&std::env::args().nth(2).unwrap()))
        .unwrap();
    eprintln!("attached");
    std::thread::sleep(std::time::Duration::from_secs(3));
    eprintln!("{:?}", loaded.counters.totals().unwrap());
    while let Some(item) = loaded.events.next() {
        eprintln!("event {} bytes", item.len());
    }
}
