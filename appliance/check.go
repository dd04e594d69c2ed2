package appliance

import (
	"errors"
	"fmt"

	"ftbox/tools/guests"
)

// CheckConfigFile is the one validation of a box's config file: `ftbox
// config check FILE` and `ftbox run --config FILE` both call it, so a config
// the check accepts is one the daemon accepts. It reads the file, checks its
// syntax and values (ParseConfig) and what it names on this box
// (CheckConfig), and reports every problem at once, each naming its key.
func CheckConfigFile(path string) (*Config, error) {
	b, err := readConfigFile(path)
	if err != nil {
		return nil, err
	}
	c, err := parseConfig(b)
	if c == nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := errors.Join(err, CheckConfig(c)); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// CheckConfig checks the files a parsed config names: the logging link's
// key (present, mode 0600, KeySize hex-encoded bytes: LoadKey) and the guest
// image (a built-in guest's name, or a regular file whose ELF header and
// program headers show an RV64 executable, read no further: guests.Check).
// A setting left empty is ParseConfig's to report.
func CheckConfig(c *Config) error {
	var errs []error
	if c.LogLink.KeyFile != "" {
		if _, err := LoadKey(c.LogLink.KeyFile); err != nil {
			errs = append(errs, fmt.Errorf("log_link.key_file: %w", err))
		}
	}
	if c.Guest.Image != "" {
		if err := guests.Check(c.Guest.Image, guests.Options{}); err != nil {
			errs = append(errs, fmt.Errorf("guest.image: %w", err))
		}
	}
	return errors.Join(errs...)
}
