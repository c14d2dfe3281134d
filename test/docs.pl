#!/usr/bin/perl
# The docs tier: run every page of the documentation as written and compare with the output
# it shows.  TAP output, one assertion per ```sql block.
#
#   perl test/docs.pl [PAGE.md ...]        (default: README.md docs/*.md)
#
# Against the server that the PG* variables point at (scripts/test-cluster.sh runs it in the
# throwaway cluster), as a superuser, from the repository root.  The convention, also stated
# at the top of docs/README.md:
#
# - each page runs in a database of its own, created fresh, in one psql session
#   (psql -X -q, default aligned output, input on stdin as pg_regress does, so errors print
#   as "ERROR:  ..." without a file name; \set SHOW_CONTEXT never; TimeZone UTC, DateStyle
#   ISO, client encoding UTF8);
# - pages under docs/ start with `CREATE EXTENSION subbilling CASCADE` already done and
#   search_path = subbilling, public; README.md starts from an empty database (its example
#   creates the extension itself);
# - every ```sql block runs, in page order; a ```text block that follows it (only blank lines
#   between) is the output psql must print for it, compared exactly (trailing white space
#   and trailing blank lines aside), and any difference fails with a diff;
# - a ```sql block without a ```text block must print no ERROR;
# - other blocks (```sh, ```text on their own, bare ```) are not run.
#
# DOCS_BLESS=1 rewrites the ```text blocks with the output the server gave instead of
# failing (for authors: read the resulting git diff, it is the review).
use strict;
use warnings;

my @pages = @ARGV ? @ARGV : ('README.md', sort glob('docs/*.md'));
# the same output whatever the server's or the caller's settings
$ENV{PGTZ} = 'UTC';
$ENV{PGDATESTYLE} = 'ISO, MDY';
$ENV{PGCLIENTENCODING} = 'UTF8';
delete $ENV{PGOPTIONS};
my $bless = $ENV{DOCS_BLESS} ? 1 : 0;
my $n = 0;
my $failed = 0;
my @tap;

sub psql_admin {
    my ($db, @cmds) = @_;
    my @args = ('psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $db);
    push @args, map { ('-c', $_) } @cmds;
    local $ENV{PGOPTIONS} = '-c client_min_messages=warning';
    system(@args) == 0 or die "psql failed: @cmds\n";
}

sub norm {
    my @l = map { my $x = $_; $x =~ s/\s+$//; $x } @{ $_[0] };
    pop @l while @l && $l[-1] eq '';
    shift @l while @l && $l[0] eq '';
    return @l;
}

sub diff_text {
    my ($exp, $got) = @_;
    my $d = '';
    my $max = @$exp > @$got ? @$exp : @$got;
    for my $i (0 .. $max - 1) {
        my $e = $exp->[$i];
        my $g = $got->[$i];
        next if defined $e && defined $g && $e eq $g;
        $d .= "-$e\n" if defined $e;
        $d .= "+$g\n" if defined $g;
    }
    return $d;
}

for my $page (@pages) {
    open(my $fh, '<', $page) or die "$page: $!\n";
    my @lines = <$fh>;
    close $fh;
    chomp @lines;

    # fenced blocks: lang, first content line index, end (closing fence) index
    my @blocks;
    for (my $i = 0; $i < @lines; $i++) {
        next unless $lines[$i] =~ /^```\s*(\w*)\s*$/;
        my $lang = $1;
        my $j = $i + 1;
        $j++ while $j < @lines && $lines[$j] !~ /^```\s*$/;
        die "$page:" . ($i + 1) . ": unclosed code block\n" if $j >= @lines;
        push @blocks, { lang => $lang, open => $i, from => $i + 1, to => $j };
        $i = $j;
    }
    my @sql;
    for my $k (0 .. $#blocks) {
        my $b = $blocks[$k];
        next unless $b->{lang} eq 'sql';
        my $next = $blocks[ $k + 1 ];
        if ($next && $next->{lang} eq 'text'
            && !grep { /\S/ } @lines[ $b->{to} + 1 .. $next->{open} - 1 ]) {
            $b->{expect} = $next;
        }
        push @sql, $b;
    }
    next unless @sql;

    (my $db = "docs_" . lc($page)) =~ s/[^a-z0-9_]/_/g;
    psql_admin('postgres', "DROP DATABASE IF EXISTS $db", "CREATE DATABASE $db",
               "ALTER DATABASE $db SET search_path = subbilling, public");
    psql_admin($db, 'CREATE EXTENSION subbilling CASCADE') unless $page =~ m{(^|/)README\.md$} && $page !~ m{docs/};

    my $script = "\\set SHOW_CONTEXT never\n";
    for my $k (0 .. $#sql) {
        $script .= "\\echo '\@\@docs-block $k\@\@'\n";
        $script .= join("\n", @lines[ $sql[$k]{from} .. $sql[$k]{to} - 1 ]) . "\n";
    }
    $script .= "\\echo '\@\@docs-block end\@\@'\n";

    my $tmp = "/tmp/subbilling-docs.$$.sql";
    open(my $out, '>', $tmp) or die "$tmp: $!\n";
    print $out $script;
    close $out;
    my $output = `psql -X -q -d $db < $tmp 2>&1`;
    unlink $tmp;
    my %got;
    my $cur;
    for my $l (split /\n/, $output) {
        if ($l =~ /^\@\@docs-block (\d+|end)\@\@$/) { $cur = $1; $got{$cur} ||= []; next; }
        push @{ $got{$cur} }, $l if defined $cur;
    }

    my @edits;
    for my $k (0 .. $#sql) {
        my $b = $sql[$k];
        $n++;
        my $name = "$page:" . ($b->{from}) . " (block " . ($k + 1) . ")";
        my @g = norm($got{$k} || []);
        my $ok;
        my $why = '';
        if (!exists $got{$k}) {
            $ok = 0;
            $why = "the block did not run:\n$output";
        } elsif ($b->{expect}) {
            my @e = norm([ @lines[ $b->{expect}{from} .. $b->{expect}{to} - 1 ] ]);
            $ok = join("\n", @e) eq join("\n", @g);
            $why = diff_text(\@e, \@g) unless $ok;
            push @edits, [ $b->{expect}{from}, $b->{expect}{to}, [@g] ] if !$ok && $bless;
        } else {
            my @err = grep { /^(ERROR|FATAL|PANIC):|^psql:/ } @g;
            $ok = !@err;
            $why = join("\n", @g) unless $ok;
        }
        $ok = 1 if $bless && $b->{expect};
        $failed++ unless $ok;
        print(($ok ? "ok" : "not ok") . " $n - $name\n");
        unless ($ok) { print "# $_\n" for split /\n/, $why; }
    }
    if (@edits) {
        for my $e (sort { $b->[0] <=> $a->[0] } @edits) {
            splice(@lines, $e->[0], $e->[1] - $e->[0], @{ $e->[2] });
        }
        open(my $w, '>', $page) or die "$page: $!\n";
        print $w join("\n", @lines) . "\n";
        close $w;
        print "# $page: rewrote " . scalar(@edits) . " output block(s)\n";
    }
    psql_admin('postgres', "DROP DATABASE IF EXISTS $db");
}

if ($n == 0) {
    print "not ok 1 - no ```sql block ran\n1..1\n";
    exit 1;
}
print "1..$n\n";
exit($failed ? 1 : 0);
