// Package labtest runs the commands of the lessons' READMEs and checks that
// they print what the README shows, so that a README and the lab (or a host)
// can never drift apart. lessons/README-FORMAT.md is the format, for authors.
//
// A fenced block whose info string is "console lab", "console host" or
// "console lab host" holds steps: a line "$ CMD" is a command, the lines
// after it up to the next "$ " line are its expected output. "console lab"
// blocks run in the lab VM (scripts/vm.sh), which the tests recognise by the
// marker file /etc/minictr-lab that the lab's init writes; "console host"
// blocks run on a host, as root, from the lesson's folder. Every block runs
// in one sh(1) session, so cd and variables carry over from step to step.
//
// In the lab, scripts/vm.sh test runs this package's binary after the other
// test binaries, outside their isolation: in the student's cgroup
// (/sys/fs/cgroup/lab/shell), with the lab's registry and image store, as
// the student's shell would.
//
// Host side effects: the commands' own. A block's shell and whatever it left
// running are killed (SIGKILL to its process group) when the block ends.
package labtest
