"""Each language's chunks carry the right names, kinds and scopes (real tree-sitter grammars)."""

from __future__ import annotations

import pytest

from leo_lsp.indexing.chunker import Chunker
from leo_lsp.records import Chunk

SNIPPETS: dict[str, tuple[str, str, set[tuple[str, str, str]]]] = {
    "python": (
        "greeter.py",
        '''import os


class Greeter:
    """Says hello."""

    greeting = "hello"

    def greet(self, name: str) -> str:
        return f"{self.greeting}, {name}"

    @staticmethod
    def shout(name: str) -> str:
        return name.upper()


def main() -> None:
    print(Greeter().greet(os.getlogin()))
''',
        {
            ("Greeter", "class", ""),
            ("greet", "method", "Greeter"),
            ("shout", "method", "Greeter"),
            ("main", "function", ""),
        },
    ),
    "javascript": (
        "app.js",
        """import fs from "fs";

/** Reads config. */
export function loadConfig(path) {
  return JSON.parse(fs.readFileSync(path, "utf8"));
}

class Store {
  constructor(items) {
    this.items = items;
  }

  add(item) {
    this.items.push(item);
  }

  handle = (event) => {
    this.add(event.item);
  };
}

const double = (x) => {
  return x * 2;
};
""",
        {
            ("loadConfig", "function", ""),
            ("Store", "class", ""),
            ("constructor", "method", "Store"),
            ("add", "method", "Store"),
            ("handle", "method", "Store"),
            ("double", "function", ""),
        },
    ),
    "jsx": (
        "Button.jsx",
        """import React from "react";

export function Button({ label, onClick }) {
  return (
    <button className="btn" onClick={onClick}>
      {label}
    </button>
  );
}

export const Panel = ({ children }) => {
  return <div className="panel">{children}</div>;
};
""",
        {("Button", "function", ""), ("Panel", "function", "")},
    ),
    "typescript": (
        "user.ts",
        """export interface User {
  id: number;
  name: string;
}

export type Id = number | string;

export class UserService {
  private users: User[] = [];

  find(id: number): User | undefined {
    return this.users.find((u) => u.id === id);
  }
}

namespace Util {
  export function clamp(x: number, lo: number, hi: number): number {
    return Math.min(hi, Math.max(lo, x));
  }
}
""",
        {
            ("User", "interface", ""),
            ("Id", "interface", ""),
            ("UserService", "class", ""),
            ("find", "method", "UserService"),
            ("Util", "module", ""),
            ("clamp", "function", "Util"),
        },
    ),
    "tsx": (
        "App.tsx",
        """import React from "react";

interface Props {
  title: string;
}

export function App({ title }: Props) {
  return (
    <main>
      <h1>{title}</h1>
    </main>
  );
}
""",
        {("Props", "interface", ""), ("App", "function", "")},
    ),
    "go": (
        "server.go",
        """package server

import "net/http"

type Server struct {
	addr string
}

type Handler interface {
	Serve(w http.ResponseWriter)
}

func (s *Server) Start() error {
	return http.ListenAndServe(s.addr, nil)
}

func New(addr string) *Server {
	return &Server{addr: addr}
}
""",
        {
            ("Server", "class", ""),
            ("Handler", "interface", ""),
            ("Start", "method", "Server"),
            ("New", "function", ""),
        },
    ),
    "rust": (
        "lib.rs",
        """use std::fmt;

#[derive(Debug)]
pub struct Point {
    x: i32,
    y: i32,
}

pub trait Shape {
    fn area(&self) -> f64;
}

impl Point {
    pub fn new(x: i32, y: i32) -> Self {
        Point { x, y }
    }
}

pub fn distance(a: &Point, b: &Point) -> f64 {
    (((a.x - b.x).pow(2) + (a.y - b.y).pow(2)) as f64).sqrt()
}
""",
        {
            ("Point", "class", ""),
            ("Shape", "interface", ""),
            ("new", "method", "Point"),
            ("distance", "function", ""),
        },
    ),
    "java": (
        "Greeter.java",
        """package demo;

public class Greeter {
    private final String greeting;

    public Greeter(String greeting) {
        this.greeting = greeting;
    }

    public String greet(String name) {
        return greeting + ", " + name;
    }
}

interface Named {
    String name();
}
""",
        {
            ("Greeter", "class", ""),
            ("Greeter", "method", "Greeter"),
            ("greet", "method", "Greeter"),
            ("Named", "interface", ""),
        },
    ),
    "c": (
        "list.c",
        """#include <stdlib.h>

typedef struct node {
    int value;
    struct node *next;
} node_t;

static node_t *push(node_t *head, int value) {
    node_t *n = malloc(sizeof *n);
    n->value = value;
    n->next = head;
    return n;
}

int length(node_t *head) {
    int n = 0;
    for (; head; head = head->next) n++;
    return n;
}
""",
        {("node_t", "class", ""), ("push", "function", ""), ("length", "function", "")},
    ),
    "cpp": (
        "shape.cpp",
        """#include <cmath>

namespace geo {

class Circle {
 public:
  explicit Circle(double r) : r_(r) {}
  double area() const {
    return M_PI * r_ * r_;
  }

 private:
  double r_;
};

}  // namespace geo

double geo_area(const geo::Circle& c) {
  return c.area();
}

void Widget::draw() {
  render();
}
""",
        {
            ("geo", "module", ""),
            ("Circle", "class", "geo"),
            ("Circle", "method", "geo.Circle"),
            ("area", "method", "geo.Circle"),
            ("geo_area", "function", ""),
            ("draw", "method", "Widget"),
        },
    ),
    "c_sharp": (
        "Greeter.cs",
        """using System;

namespace Demo
{
    public interface IGreeter
    {
        string Greet(string name);
    }

    public class Greeter : IGreeter
    {
        public string Greet(string name)
        {
            return $"Hello, {name}";
        }
    }
}
""",
        {
            ("Demo", "module", ""),
            ("IGreeter", "interface", "Demo"),
            ("Greeter", "class", "Demo"),
            ("Greet", "method", "Demo.Greeter"),
        },
    ),
    "ruby": (
        "greeter.rb",
        """require "json"

module Greetings
  class Greeter
    def initialize(greeting)
      @greeting = greeting
    end

    def greet(name)
      "#{@greeting}, #{name}"
    end
  end
end

def helper
  puts "help"
end
""",
        {
            ("Greetings", "module", ""),
            ("Greeter", "class", "Greetings"),
            ("initialize", "method", "Greetings.Greeter"),
            ("greet", "method", "Greetings.Greeter"),
            ("helper", "function", ""),
        },
    ),
    "php": (
        "Greeter.php",
        """<?php

namespace App;

interface Greets
{
    public function greet(string $name): string;
}

class Greeter implements Greets
{
    public function greet(string $name): string
    {
        return "Hello, " . $name;
    }
}

function helper(): void
{
    echo "help";
}
""",
        {
            ("Greets", "interface", ""),
            ("Greeter", "class", ""),
            ("greet", "method", "Greeter"),
            ("helper", "function", ""),
        },
    ),
    "kotlin": (
        "Greeter.kt",
        """package demo

interface Named {
    fun name(): String
}

class Greeter(private val greeting: String) {
    fun greet(name: String): String {
        return "$greeting, $name"
    }
}

fun main() {
    println(Greeter("hi").greet("x"))
}
""",
        {
            ("Named", "interface", ""),
            ("Greeter", "class", ""),
            ("greet", "method", "Greeter"),
            ("main", "function", ""),
        },
    ),
    "swift": (
        "Greeter.swift",
        """import Foundation

protocol Named {
    func name() -> String
}

class Greeter {
    let greeting: String

    init(greeting: String) {
        self.greeting = greeting
    }

    func greet(name: String) -> String {
        return "\\(greeting), \\(name)"
    }
}

func helper() {
    print("help")
}
""",
        {
            ("Named", "interface", ""),
            ("Greeter", "class", ""),
            ("init", "method", "Greeter"),
            ("greet", "method", "Greeter"),
            ("helper", "function", ""),
        },
    ),
    "bash": (
        "deploy.sh",
        """#!/usr/bin/env bash
set -euo pipefail

build() {
  make -j4
}

function deploy {
  rsync -a dist/ server:/srv/
}

build
deploy
""",
        {("build", "function", ""), ("deploy", "function", "")},
    ),
    "markdown": (
        "README.md",
        """# Project

Intro text.

## Install

Run the installer.

## Usage

Call the tool.
""",
        {
            ("Project", "section", ""),
            ("Install", "section", "Project"),
            ("Usage", "section", "Project"),
        },
    ),
}


def _defs(chunks: list[Chunk]) -> set[tuple[str, str, str]]:
    return {(c.symbol, c.kind, c.scope) for c in chunks if c.symbol}


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_language_chunks_have_names_kinds_scopes(language: str) -> None:
    path, source, expected = SNIPPETS[language]
    chunks = Chunker().chunk(source, path, language)
    assert _defs(chunks) == expected
    assert all(c.language == language and c.path == path for c in chunks)
    lines = source.split("\n")
    covered = [0] * len(lines)
    for c in chunks:
        for i in range(c.start_line, c.end_line + 1):
            covered[i] += 1
    assert all(covered[i] == 1 for i, line in enumerate(lines) if line.strip())
