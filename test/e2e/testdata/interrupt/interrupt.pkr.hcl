# A build that waits until it is interrupted: it proves that a Ctrl-C sent
# by the harness (SIGINT to Packer's process group) reaches Packer, which
# then cancels the build and exits non-zero, leaving no process behind.
source "null" "wait" {
  communicator = "none"
}

build {
  sources = ["source.null.wait"]

  provisioner "shell-local" {
    # Blocks on a FIFO (in Packer's working directory) that nobody writes
    # to, until the interrupt ends it.
    inline = [
      "rm -f wait.fifo && mkfifo wait.fifo",
      "echo harness-interrupt-ready",
      "read -r _ < wait.fifo",
    ]
  }
}
