// The Kotlin side of the bindings benchmark (bindings/python/bench/
// bench_recover.py drives it, beside examples/bench_recover.rs and the
// Python worker): time PasscrowClient.recover on an existing pack against a
// live server that delivers codes to a file. Each round asks for fresh codes
// (verify, untimed: codes are one-shot), reads them, and times recover alone.
//
// Usage: BenchRecoverKt CONFIG_DIR DATA_DIR PACK CODES_FILE NAME...
//
// First warms the JIT without the network (-Dbench.jit=N rounds, default
// 20000): recover with codes that are all blanks (refused in Rust before
// any request, so the generated wrapper, the pack and list lowering and
// the JNA call run), a RecoveryResult.Secret lowered and lifted again (the
// success path's converter), and normalizeCode. Then prints "ready" and
// runs one round per line read on stdin ("go PAUSE_MS"), answering each
// with "SECONDS FLOOR": recover's time, and that of a binding call doing
// no work (normalizeCode) right after it.

import java.io.File
import uniffi.passcrow.*

private val BENCH_SECRET = "benchmark secret".toByteArray()

private fun newestCode(codes: File, name: String): String {
    val want = "$name@example.org"
    return codes.readLines()
        .map { it.split("\t") }
        .filter { it.size == 2 && it[0].substringAfterLast(":") == want }
        .map { it[1].trim() }
        .lastOrNull() ?: error("no code for $want")
}

fun main(args: Array<String>) {
    if (args.size < 6) {
        System.err.println("usage: BenchRecoverKt CONFIG_DIR DATA_DIR PACK CODES_FILE NAME...")
        kotlin.system.exitProcess(2)
    }
    val client = PasscrowClient(args[0], args[1])
    val pack = client.pack(args[2])
    val codesFile = File(args[3])
    val names = args.drop(4)

    val jit = System.getProperty("bench.jit", "20000").toInt()
    val blanks = names.map { "-----------" }
    var sink = 0
    repeat(jit) {
        try {
            client.recover(pack, blanks)
            error("blank codes were accepted")
        } catch (e: PasscrowException.BadInput) {
            sink += e.detail.length
        }
        when (val r = FfiConverterTypeRecoveryResult.lift(
            FfiConverterTypeRecoveryResult.lower(RecoveryResult.Secret(BENCH_SECRET)))) {
            is RecoveryResult.Secret -> sink += r.secret.size
            is RecoveryResult.Pack -> error("lifted the wrong variant")
        }
        sink += normalizeCode("abcd-efgh").length
    }
    println("ready $sink")
    System.out.flush()

    val stdin = System.`in`.bufferedReader()
    while (true) {
        val line = stdin.readLine() ?: break
        val pause = line.trim().split(" ").getOrNull(1)?.toLongOrNull() ?: 0L
        client.verify(pack)
        val codes = names.map { newestCode(codesFile, it) }
        if (pause > 0) Thread.sleep(pause)
        val t0 = System.nanoTime()
        val r = client.recover(pack, codes)
        val dt = System.nanoTime() - t0
        if (!(r is RecoveryResult.Secret && r.secret.contentEquals(BENCH_SECRET))) {
            throw IllegalStateException("recover gave back something else than the secret")
        }
        val f0 = System.nanoTime()
        normalizeCode(codes[0])
        val floor = System.nanoTime() - f0
        println(String.format(java.util.Locale.ROOT, "%.9f %.9f", dt / 1e9, floor / 1e9))
        System.out.flush()
    }
}
