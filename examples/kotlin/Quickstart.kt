// Passcrow from Kotlin: protect a secret 2-of-3, then recover it.
//
// Start a server that writes codes to a file, then run this with its URL:
//   passcrow-server init /tmp/pcs
//   passcrow-server --data /tmp/pcs --deliver-to-file /tmp/codes.txt &
//   java -cp quickstart.jar:jna.jar -Djna.library.path=target/release \
//       QuickstartKt http://127.0.0.1:8451 /tmp/codes.txt
// Without the codes file it asks for the codes on the terminal.
// Every call blocks: in an app, run them on Dispatchers.IO.

import java.io.File
import java.nio.file.Files
import uniffi.passcrow.*

fun main(args: Array<String>) {
    val server = args.getOrElse(0) { "http://127.0.0.1:8451" }
    val codesFile = args.getOrNull(1)?.let(::File)
    val dir = Files.createTempDirectory("passcrow-quickstart").toFile()
    val client = PasscrowClient(File(dir, "config").path, File(dir, "data").path)

    val people = listOf("alice", "bob", "carol")
    val ids = people.map { "$it@example.org via $server" }
    client.protect("wallet", "correct horse".toByteArray(), ids, n = 2u, m = 3u)
    println("protected 'wallet' with 2 of ${ids.size} identities")

    val pack = client.pack("wallet")
    for (h in client.verify(pack).hints) println("code ${h.prefix}... sent to ${h.hint}")
    val codes = people.take(2).map { who ->
        codesFile?.readLines()?.lastOrNull { it.startsWith("email:$who@") }?.substringAfter("\t")
            ?: run { print("code for $who: "); readln() }
    }
    try {
        val r = client.recover(pack, codes) as RecoveryResult.Secret
        println("recovered: ${String(r.secret)}")
    } catch (e: PasscrowException.WrongCode) {
        println("wrong code (${e.attemptsLeft} attempts left)")
    }
    client.forget("wallet")
    println("forgot 'wallet'")
    dir.deleteRecursively()
}
