//go:build windows

package dialog

import (
	"os/exec"
	"strings"
)

// tool returns PowerShell, which every supported Windows has.
func tool() (toolCmd, error) {
	p, err := exec.LookPath("powershell.exe")
	if err != nil {
		return nil, ErrUnavailable
	}
	return powershell{p}, nil
}

type powershell struct{ path string }

// psQuote makes s a single-quoted PowerShell string.
func psQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func (p powershell) command(k kind, title, text, filter string) (string, []string) {
	var script string
	const forms = "Add-Type -AssemblyName System.Windows.Forms; [System.Windows.Forms.Application]::EnableVisualStyles(); "
	switch k {
	case kindPassword:
		script = forms + `$f = New-Object Windows.Forms.Form; $f.Text = ` + psQuote(title) + `; $f.Width = 420; $f.Height = 170; $f.StartPosition = 'CenterScreen'; $f.TopMost = $true; $f.FormBorderStyle = 'FixedDialog'; $f.MaximizeBox = $false;` +
			`$l = New-Object Windows.Forms.Label; $l.Text = ` + psQuote(text) + `; $l.Left = 10; $l.Top = 10; $l.Width = 380; $f.Controls.Add($l);` +
			`$t = New-Object Windows.Forms.TextBox; $t.UseSystemPasswordChar = $true; $t.Left = 10; $t.Top = 40; $t.Width = 380; $f.Controls.Add($t);` +
			`$ok = New-Object Windows.Forms.Button; $ok.Text = 'OK'; $ok.Left = 230; $ok.Top = 80; $ok.DialogResult = 'OK'; $f.AcceptButton = $ok; $f.Controls.Add($ok);` +
			`$c = New-Object Windows.Forms.Button; $c.Text = 'Cancel'; $c.Left = 315; $c.Top = 80; $c.DialogResult = 'Cancel'; $f.CancelButton = $c; $f.Controls.Add($c);` +
			`if ($f.ShowDialog() -eq 'OK') { [Console]::Out.Write($t.Text) } else { exit 1 }`
	case kindFile:
		f := "All files (*.*)|*.*"
		if filter != "" {
			f = filter + "|" + filter + "|" + f
		}
		script = forms + `$d = New-Object Windows.Forms.OpenFileDialog; $d.Title = ` + psQuote(title) + `; $d.Filter = ` + psQuote(f) + `; if ($d.ShowDialog() -eq 'OK') { [Console]::Out.Write($d.FileName) } else { exit 1 }`
	case kindInfo, kindError:
		icon := "Information"
		if k == kindError {
			icon = "Error"
		}
		script = forms + `[void][Windows.Forms.MessageBox]::Show(` + psQuote(text) + `, ` + psQuote(title) + `, 'OK', '` + icon + `')`
	}
	return p.path, []string{"-NoProfile", "-NonInteractive", "-WindowStyle", "Hidden", "-Command", script}
}
