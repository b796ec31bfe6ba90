package cloudinitreset

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/accounts"
)

// Defaults.
const (
	DefaultExecuteCommand = "sudo -n sh '{{.Path}}'"
	DefaultRemoteFolder   = "/tmp"
	DefaultShutdownDelay  = 5 * time.Second

	MachineIDEmpty         = "empty"
	MachineIDUninitialized = "uninitialized"
)

// vitalPaths may never be removed, by extra_paths or otherwise (the apply
// script refuses them too). Cleaned absolute paths.
var vitalPaths = []string{
	"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64",
	"/libx32", "/media", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin",
	"/srv", "/sys", "/tmp", "/usr", "/var",
	"/etc/ssh", "/etc/sudoers.d", "/etc/systemd", "/etc/cloud",
	"/usr/bin", "/usr/lib", "/usr/lib64", "/usr/libexec", "/usr/local",
	"/usr/sbin", "/usr/share",
	"/var/cache", "/var/lib", "/var/log", "/var/spool", "/var/tmp", "/var/mail",
	"/var/lib/dpkg", "/var/lib/rpm", "/var/lib/cloud",
}

func isVital(p string) bool {
	for _, v := range vitalPaths {
		if p == v {
			return true
		}
	}
	return false
}

// prepare fills the defaults and validates c. Every error names the field.
func (c *Config) prepare() error {
	var errs *packersdk.MultiError
	add := func(format string, args ...any) {
		errs = packersdk.MultiErrorAppend(errs, fmt.Errorf(format, args...))
	}

	if c.User != "" {
		if err := checkUser(c.User); err != nil {
			add("user: %v", err)
		}
	}

	if c.ExecuteCommand == "" {
		c.ExecuteCommand = DefaultExecuteCommand
	}
	if _, err := renderExecuteCommand(c.ExecuteCommand, &c.ctx, "/tmp/cloudimg-reset.test/apply.sh", nil); err != nil {
		add("execute_command: %v", err)
	}

	if c.RemoteFolder == "" {
		c.RemoteFolder = DefaultRemoteFolder
	}
	if !path.IsAbs(c.RemoteFolder) {
		add("remote_folder: %q is not an absolute path", c.RemoteFolder)
	} else if strings.ContainsAny(c.RemoteFolder, "\n\x00") {
		add("remote_folder: contains a newline or NUL")
	}

	switch c.MachineID {
	case "":
		c.MachineID = MachineIDEmpty
	case MachineIDEmpty, MachineIDUninitialized:
	default:
		add("machine_id: unknown value %q; allowed: %q, %q", c.MachineID, MachineIDEmpty, MachineIDUninitialized)
	}

	for i, p := range c.ExtraPaths {
		if err := checkExtraPath(p); err != nil {
			add("extra_paths[%d]: %v", i, err)
		}
	}

	for k := range c.Labels {
		if strings.TrimSpace(k) == "" {
			add("labels: empty label name")
		}
	}

	if c.ShutdownDelay == 0 {
		c.ShutdownDelay = DefaultShutdownDelay
	}
	if c.ShutdownDelay < time.Second {
		add("shutdown_delay: %s is shorter than 1s: Packer would not receive the report before the guest powers off", c.ShutdownDelay)
	} else if c.ShutdownDelay%time.Second != 0 {
		add("shutdown_delay: %s is not a whole number of seconds", c.ShutdownDelay)
	}

	if errs != nil && len(errs.Errors) > 0 {
		return errs
	}
	return nil
}

// checkUser refuses names that can never be removed.
func checkUser(user string) error {
	if err := accounts.ValidUserName(user); err != nil {
		return err
	}
	if user == "root" {
		return errors.New("refusing to remove root")
	}
	return nil
}

// checkExtraPath validates one extra_paths entry.
func checkExtraPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("%q is not an absolute path", p)
	case strings.ContainsAny(p, "\n\x00"):
		return fmt.Errorf("%q contains a newline or NUL", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return fmt.Errorf("%q contains \"..\"", p)
		}
	}
	clean := path.Clean(p)
	if isVital(clean) {
		return fmt.Errorf("refusing to remove %s: it is vital to the system", clean)
	}
	dir, last := path.Split(clean)
	if hasGlob(strings.TrimSuffix(dir, "/")) {
		return fmt.Errorf("%q: patterns (*, ?, [) are allowed in the last path component only", p)
	}
	if hasGlob(last) && dir == "/" {
		return fmt.Errorf("%q: a pattern directly below / is refused", p)
	}
	if hasGlob(last) && strings.Trim(last, "*") == "" && isVital(path.Clean(dir)) && topLevelVital(path.Clean(dir)) {
		// e.g. /usr/* or /var/*: everything below a top-level directory.
		return fmt.Errorf("refusing %q: it would empty %s", p, path.Clean(dir))
	}
	return nil
}

// topLevelVital reports the vital directories whose whole content is vital
// too (/etc/*, /usr/*, /var/* ...), as opposed to /tmp or /var/tmp.
func topLevelVital(dir string) bool {
	switch dir {
	case "/tmp", "/var/tmp", "/var/cache", "/var/log", "/var/mail", "/media", "/mnt", "/srv", "/opt":
		return false
	}
	return true
}

func hasGlob(s string) bool { return strings.ContainsAny(s, "*?[") }

// renderExecuteCommand renders execute_command with Path (and the build
// variables in data) and checks that it uses the path.
func renderExecuteCommand(tmpl string, ictx *interpolate.Context, scriptPath string, data map[string]interface{}) (string, error) {
	d := map[string]interface{}{}
	for k, v := range data {
		d[k] = v
	}
	d["Path"] = scriptPath
	c := *ictx
	c.Data = d
	out, err := interpolate.Render(tmpl, &c)
	if err != nil {
		return "", err
	}
	if !strings.Contains(out, scriptPath) {
		return "", fmt.Errorf("%q does not use {{.Path}}, the path of the script to run", tmpl)
	}
	return out, nil
}

// enabled is the value of a default-true option.
func enabled(t config.Trilean) bool { return t != config.TriFalse }
