package labtest

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// A Block is one fenced block of steps.
type Block struct {
	Line  int  // of the opening fence, 1-based
	Lab   bool // run in the lab VM ("console lab")
	Host  bool // run on a host, as root, from the lesson's folder ("console host")
	Steps []Step
}

// A Step is one command and the output the README shows for it.
type Step struct {
	Line     int    // of the "$ " line
	Command  string // without the "$ " (continuation lines joined by newlines)
	MustFail bool   // written "$ ! CMD": the command must exit non-zero
	Want     []string
}

// Parse reads a README and returns its blocks of steps, in order. Plain
// blocks ("```sh", "```console", "```") are not steps and are skipped. A
// block marked "console" with a word other than lab and host is an error,
// so that a typo never turns a step into prose.
func Parse(r io.Reader) ([]Block, error) {
	var (
		blocks []Block
		cur    *Block
		fence  string // the opening fence while inside any block
		n      int
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		n++
		line := sc.Text()
		if fence == "" {
			f, info, ok := openFence(line)
			if !ok {
				continue
			}
			fence = f
			b, marked, err := parseInfo(info)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			if marked {
				b.Line = n
				cur = &b
			}
			continue
		}
		if closesFence(line, fence) {
			if cur != nil {
				if len(cur.Steps) == 0 {
					return nil, fmt.Errorf("line %d: block has no \"$ \" command", cur.Line)
				}
				blocks = append(blocks, finish(*cur))
			}
			cur, fence = nil, ""
			continue
		}
		if cur == nil {
			continue
		}
		if err := addLine(cur, line, n); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if fence != "" {
		return nil, fmt.Errorf("end of file inside a block opened with %s", fence)
	}
	return blocks, nil
}

// addLine adds one line of a marked block: a command, a continuation of
// the last command ("> " lines, as the shell prompts for them), or output.
func addLine(b *Block, line string, n int) error {
	if cmd, ok := strings.CutPrefix(line, "$ "); ok || line == "$" {
		step := Step{Line: n, Command: strings.TrimSpace(cmd)}
		if rest, ok := strings.CutPrefix(step.Command, "! "); ok {
			step.MustFail, step.Command = true, strings.TrimSpace(rest)
		}
		if step.Command == "" {
			return fmt.Errorf("line %d: empty command", n)
		}
		b.Steps = append(b.Steps, step)
		return nil
	}
	if len(b.Steps) == 0 {
		if strings.TrimSpace(line) == "" {
			return nil
		}
		return fmt.Errorf("line %d: output before the block's first \"$ \" command", n)
	}
	last := &b.Steps[len(b.Steps)-1]
	if rest, ok := strings.CutPrefix(line, "> "); ok && len(last.Want) == 0 {
		last.Command += "\n" + rest
		return nil
	}
	last.Want = append(last.Want, strings.TrimRight(line, " \t"))
	return nil
}

// finish drops the blank lines that end each step's output: a README
// separates its steps with them.
func finish(b Block) Block {
	for i := range b.Steps {
		b.Steps[i].Want = trimTrailingBlank(b.Steps[i].Want)
	}
	return b
}

func trimTrailingBlank(lines []string) []string {
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// openFence recognises "```info" or "~~~info" (three or more).
func openFence(line string) (fence, info string, ok bool) {
	t := strings.TrimLeft(line, " ")
	if len(line)-len(t) > 3 {
		return "", "", false // indented code, not a fence
	}
	for _, c := range []string{"`", "~"} {
		if strings.HasPrefix(t, c+c+c) {
			rest := strings.TrimLeft(t, c)
			return t[:len(t)-len(rest)], strings.TrimSpace(rest), true
		}
	}
	return "", "", false
}

func closesFence(line, fence string) bool {
	t := strings.TrimSpace(line)
	return len(t) >= len(fence) && strings.Trim(t, fence[:1]) == ""
}

// parseInfo reads an info string: "console" followed by lab and/or host
// marks a block of steps.
func parseInfo(info string) (Block, bool, error) {
	words := strings.Fields(info)
	if len(words) < 2 || words[0] != "console" {
		return Block{}, false, nil
	}
	var b Block
	for _, w := range words[1:] {
		switch w {
		case "lab":
			b.Lab = true
		case "host":
			b.Host = true
		default:
			return Block{}, false, fmt.Errorf("info string %q: %q is neither lab nor host", info, w)
		}
	}
	return b, true, nil
}
