use downhill::backend::{Backend, Data, cpu::Cpu};
use downhill::gpu::Gpu;
use downhill::{Objective, Synthetic};
use std::time::Instant;
fn main() {
    let gpu = Gpu::open().unwrap();
    let obj = Objective::logistic();
    let data = Synthetic::new(100_000, 5, obj, 1).unwrap().generate();
    for name in ["gpu", "cpu"] {
        let b: Box<dyn Backend> = if name == "gpu" {
            Box::new(gpu.clone())
        } else {
            Box::new(Cpu)
        };
        let t = Instant::now();
        let mut s = b.open(Data::Host(&data), obj).unwrap();
        println!("{name} open {:.2}", t.elapsed().as_secs_f64());
        let t = Instant::now();
        s.gradient().unwrap();
        println!("{name} gradient {:.2}", t.elapsed().as_secs_f64());
        let t = Instant::now();
        s.gradient().unwrap();
        println!("{name} gradient 2 {:.2}", t.elapsed().as_secs_f64());
    }
}
