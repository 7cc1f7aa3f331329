// The Kotlin bindings' story against a real passcrow-server (started by
// scripts/test.d/30-bindings.sh): protect 2-of-3, verify, read the codes,
// recover, compare bytes; a wrong code throws the typed exception with the
// attempts left; forget removes the pack. Also: an app-supplied transport,
// bad input, calls from several threads, the health check (no code sent,
// renewal due, review recorded), an authenticator app (the enrolment URI,
// the code an app would show, once) and a release delay (the typed
// PasscrowException.Pending with its release time).
//
// Usage: PasscrowTestKt SERVER_URL CODES_FILE WORK_DIR

import java.io.File
import java.net.HttpURLConnection
import java.net.URL
import java.util.concurrent.atomic.AtomicInteger
import kotlin.concurrent.thread
import uniffi.passcrow.*

lateinit var serverUrl: String
lateinit var codesFile: File
lateinit var workDir: File

val SECRET = "correct horse \u0000 battery".toByteArray() + byteArrayOf(0xff.toByte())

fun ids(vararg names: String) = names.map { "$it@example.org via $serverUrl" }

/** The newest code delivered to NAME@example.org. */
fun codeFor(name: String): String =
    codesFile.readLines()
        .map { it.split("\t") }
        .filter { it.size == 2 && it[0].substringAfter(":") == "$name@example.org" }
        .map { it[1].trim() }
        .lastOrNull() ?: error("no code for $name")

fun mangle(code: String) = code.dropLast(1) + (if (code.last() != '1') "1" else "2")

fun client(name: String, transport: HttpTransport? = null) =
    PasscrowClient(
        File(workDir, "$name/config").path, File(workDir, "$name/data").path,
        transport = transport, retryBackoffMs = 10u, maxBackoffMs = 20u,
    )

fun check(cond: Boolean, what: () -> String) {
    if (!cond) throw AssertionError(what())
}

inline fun <reified E : Throwable> expect(block: () -> Unit): E {
    try {
        block()
    } catch (e: Throwable) {
        if (e is E) return e
        throw AssertionError("expected ${E::class.simpleName}, got $e")
    }
    throw AssertionError("expected ${E::class.simpleName}, nothing thrown")
}

fun testStory() {
    val c = client("story")
    val res = c.protect("wallet", SECRET, ids("alice", "bob", "carol"), n = 2u, m = 3u)
    check(res.minShares == 2u && res.escrows == 3u) { "protect: $res" }
    check(c.list().map { it.name } == listOf("wallet")) { "list" }

    val pack = c.pack("wallet")
    val v = c.verify(pack)
    check(v.hints.size == 3 && v.hints.all { it.kind == "email" }) { "hints: $v" }
    val codes = listOf("alice", "bob", "carol").map { codeFor(it) }
    check(codes.map { it.substring(0, 1) } == v.hints.map { it.prefix }) { "prefixes" }

    val wrong = expect<PasscrowException.WrongCode> {
        c.recover(pack, listOf(mangle(codes[0]), mangle(codes[1])))
    }
    check(wrong.attemptsLeft == 2u) { "attempts left: ${wrong.attemptsLeft}" }
    check(wrong.detail.contains("2 attempts left")) { wrong.detail }

    when (val r = c.recover(pack, listOf(codes[2], codes[0].lowercase()))) {
        is RecoveryResult.Secret -> check(r.secret.contentEquals(SECRET)) { "secret differs" }
        is RecoveryResult.Pack -> throw AssertionError("unexpected pack")
    }
    check(c.forget("wallet") == 3u) { "forget" }
    check(c.list().isEmpty()) { "list after forget" }
    expect<PasscrowException.NotFound> { c.pack("wallet") }
    pack.close()
    c.close()
}

/** An app's own HTTP stack (HttpURLConnection here: add pinning, a proxy...). */
class UrlConnectionTransport : HttpTransport {
    val requests = AtomicInteger()
    override fun post(url: String, body: ByteArray): HttpResponse {
        requests.incrementAndGet()
        try {
            val conn = URL(url).openConnection() as HttpURLConnection
            conn.requestMethod = "POST"
            conn.doOutput = true
            conn.setRequestProperty("Content-Type", "application/json")
            conn.outputStream.use { it.write(body) }
            val status = conn.responseCode
            val stream = if (status >= 400) conn.errorStream else conn.inputStream
            val answer = stream?.use { it.readBytes() } ?: ByteArray(0)
            return HttpResponse(status.toUShort(), answer)
        } catch (e: java.io.IOException) {
            throw PasscrowException.Transport("$e")
        }
    }
}

fun testForeignTransport() {
    val t = UrlConnectionTransport()
    val c = client("transport", t)
    c.protect("notes", SECRET, ids("dora", "emil", "fay"), n = 2u, m = 3u)
    val pack = c.pack("notes")
    // Per-call options (here a zero anonymity delay, for this call only).
    c.verify(pack, CallOptions(anonymityDelay = DelayRange(minSeconds = 0u, maxSeconds = 0u)))
    val r = c.recover(pack, listOf(codeFor("emil"), codeFor("fay")), CallOptions())
    check(r is RecoveryResult.Secret && r.secret.contentEquals(SECRET)) { "recover" }
    expect<PasscrowException.BadInput> {
        c.verify(pack, CallOptions(DelayRange(minSeconds = 2u, maxSeconds = 1u)))
    }
    check(c.forget("notes") == 3u) { "forget" }
    check(t.requests.get() >= 10) { "transport used ${t.requests.get()} times" }

    val broken = client("broken", object : HttpTransport {
        override fun post(url: String, body: ByteArray): HttpResponse =
            throw PasscrowException.Transport("offline (test)")
    })
    val e = expect<PasscrowException.Incomplete> {
        broken.protect("x", SECRET, ids("a", "b", "c"), n = 2u, m = 3u)
    }
    check(e.operation == "protect" && e.failures.size == 3) { "incomplete: $e" }
}

fun testBadInput() {
    val c = client("bad")
    expect<PasscrowException.BadInput> { c.protect("x", SECRET, ids("a", "b", "c"), n = 4u, m = 3u) }
    expect<PasscrowException.BadInput> { c.protect("x", SECRET, listOf("nobody"), n = 1u) }
    expect<PasscrowException.BadInput> { c.protect("", SECRET, ids("a", "b", "c")) }
    check(normalizeCode(" a12o45l ") == "A120451") { "normalizeCode" }
}

fun testThreads() {
    val c = client("threads")
    val errors = java.util.Collections.synchronizedList(mutableListOf<Throwable>())
    (0 until 3).map { i ->
        thread {
            try {
                c.protect("p$i", SECRET, ids("t${i}a", "t${i}b"), n = 1u, m = 2u)
            } catch (e: Throwable) {
                errors.add(e)
            }
        }
    }.forEach { it.join() }
    check(errors.isEmpty()) { "errors: $errors" }
    check(c.list().map { it.name }.sorted() == listOf("p0", "p1", "p2")) { "list" }
}

fun testHealth() {
    val c = client("health")
    val before = if (codesFile.exists()) codesFile.readText() else ""
    val res = c.protect("health", SECRET, ids("dora", "emil", "finn"), n = 2u, m = 3u)
    check(res.warnings.isNotEmpty()) { "one server holds every share: a warning expected" }
    val h = c.check(c.pack("health"))
    check(h.recoverable == Recoverability.YES) { "recoverable: $h" }
    check(h.healthy == 3u && h.margin == 1L && h.minShares == 2u) { "counts: $h" }
    check(h.escrows.all { it.status == EscrowStatus.HELD && it.proven }) { "escrows: ${h.escrows}" }
    val due = c.renewalDue(withinSeconds = 400uL * 86400uL).single { it.name == "health" }
    check(due.due && due.reasons.isNotEmpty()) { "due within 400 days: $due" }
    val notDue = c.renewalDue(withinSeconds = 60uL).single { it.name == "health" }
    check(!notDue.due && notDue.reasons.isEmpty()) { "not due within a minute: $notDue" }
    c.markReviewed("health")
    val after = if (codesFile.exists()) codesFile.readText() else ""
    check(after == before) { "the check delivered a code or a notice" }
    check(c.forget("health") == 3u) { "forget" }
}

/** The 6 digits an authenticator app enrolled with `uri` shows now
 * (RFC 6238: HMAC-SHA-1 over the 30 s step). */
fun appCode(uri: String): String {
    val query = uri.substringAfter('?').split('&').associate { it.substringBefore('=') to it.substringAfter('=') }
    check(query["algorithm"] == "SHA1" && query["digits"] == "6" && query["period"] == "30") { "uri parameters" }
    val alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    var bits = 0L
    var n = 0
    val key = java.io.ByteArrayOutputStream()
    for (ch in query.getValue("secret").uppercase()) {
        bits = (bits shl 5) or alphabet.indexOf(ch).toLong()
        n += 5
        if (n >= 8) {
            key.write(((bits shr (n - 8)) and 0xff).toInt())
            n -= 8
        }
    }
    val mac = javax.crypto.Mac.getInstance("HmacSHA1")
    mac.init(javax.crypto.spec.SecretKeySpec(key.toByteArray(), "HmacSHA1"))
    val step = System.currentTimeMillis() / 1000 / 30
    val h = mac.doFinal(java.nio.ByteBuffer.allocate(8).putLong(step).array())
    val o = h[h.size - 1].toInt() and 15
    val v = java.nio.ByteBuffer.wrap(h, o, 4).int and 0x7fffffff
    return "%06d".format(v % 1000000)
}

fun testTotpAndDelay() {
    val c = client("totp")
    val res = c.protect("wallet", SECRET, listOf("totp:phone via $serverUrl"), n = 1u, m = 1u)
    val e = res.totp.single()
    check(e.label == "phone" && e.server == serverUrl && e.prefix == "1") { "enrolment: $e" }
    val uri = e.uri.expose()
    check(uri.startsWith("otpauth://totp/Passcrow:phone?secret=")) { "uri" }
    check(!e.toString().contains("secret=") && !res.toString().contains("secret=")) {
        "printing the result shows the secret"
    }
    val pack = c.pack("wallet")
    check(c.verify(pack).hints.single().kind == "totp") { "hint" }
    val code = appCode(uri)
    val got = c.recover(pack, listOf(code))
    check(got is RecoveryResult.Secret && got.secret.contentEquals(SECRET)) { "recover" }
    c.verify(pack)
    expect<PasscrowException.WrongCode> { c.recover(pack, listOf(code)) }

    c.protect(
        "diary", SECRET,
        listOf("gina@example.org, notify=hugo@example.org, delay=1h via $serverUrl"), n = 1u, m = 1u,
    )
    val diary = c.pack("diary")
    c.verify(diary)
    val before = System.currentTimeMillis() / 1000
    val pending = expect<PasscrowException.Pending> { c.recover(diary, listOf(codeFor("gina"))) }
    check(pending.releaseAt in (before + 3500)..(before + 3700)) { "release at ${pending.releaseAt}" }
    check(codesFile.readText().contains("hugo@example.org")) { "the notify identity was not told" }
}

fun main(args: Array<String>) {
    serverUrl = args[0]
    codesFile = File(args[1])
    workDir = File(args[2])
    val tests = listOf(
        "story" to ::testStory,
        "foreign transport" to ::testForeignTransport,
        "bad input" to ::testBadInput,
        "threads" to ::testThreads,
        "health check" to ::testHealth,
        "authenticator app and release delay" to ::testTotpAndDelay,
    )
    var passed = 0
    var failed = 0
    for ((name, t) in tests) {
        try {
            t()
            passed++
            println("ok   $name")
        } catch (e: Throwable) {
            failed++
            println("FAIL $name: $e")
            e.printStackTrace()
        }
    }
    println("$passed passed, $failed failed")
    if (failed > 0) kotlin.system.exitProcess(1)
}
